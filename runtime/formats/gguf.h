// GGUF v3 container (ggml's model file): a strict mmap reader and a streaming writer.
// Container only, no policy: which keys and tensors a model needs is quantize/'s business.
// Layout and reader rules: docs/gguf-and-quantization.md §1 (ggml src/gguf.cpp).
#pragma once
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "formats/tensor_source.h"

namespace temper {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

// KV value type ids (ggml include/gguf.h `enum gguf_type`).
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
constexpr uint32_t kGgufTypeCount = 13;
constexpr uint32_t kGgufDefaultAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT
constexpr size_t kGgufMaxTensorName = 63;       // ggml: name length < GGML_MAX_NAME (64)
constexpr int kGgufMaxDims = 4;                 // GGML_MAX_DIMS

std::string_view gguf_type_name(GgufType t);  // "u32", "string", "array", ...; "invalid" otherwise
size_t gguf_type_size(GgufType t);            // bytes of one fixed-size element; 0 for string/array

// C++ type <-> GGUF scalar type.
template <typename T> struct GgufTypeOf;
template <> struct GgufTypeOf<uint8_t> { static constexpr GgufType value = GgufType::kU8; };
template <> struct GgufTypeOf<int8_t> { static constexpr GgufType value = GgufType::kI8; };
template <> struct GgufTypeOf<uint16_t> { static constexpr GgufType value = GgufType::kU16; };
template <> struct GgufTypeOf<int16_t> { static constexpr GgufType value = GgufType::kI16; };
template <> struct GgufTypeOf<uint32_t> { static constexpr GgufType value = GgufType::kU32; };
template <> struct GgufTypeOf<int32_t> { static constexpr GgufType value = GgufType::kI32; };
template <> struct GgufTypeOf<float> { static constexpr GgufType value = GgufType::kF32; };
template <> struct GgufTypeOf<bool> { static constexpr GgufType value = GgufType::kBool; };
template <> struct GgufTypeOf<uint64_t> { static constexpr GgufType value = GgufType::kU64; };
template <> struct GgufTypeOf<int64_t> { static constexpr GgufType value = GgufType::kI64; };
template <> struct GgufTypeOf<double> { static constexpr GgufType value = GgufType::kF64; };

// One KV value: a scalar, a string, or a (non-nested) array. Numeric scalars and arrays are
// kept as packed little-endian bytes exactly as stored in the file (bool = one byte 0/1).
class GgufValue {
 public:
  GgufValue() = default;  // u8 0
  template <typename T>
  static GgufValue scalar(T v) {
    return raw(GgufTypeOf<T>::value, false, 1, {reinterpret_cast<const uint8_t*>(&v), sizeof v});
  }
  template <typename T>
  static GgufValue array(std::span<const T> v) {
    return raw(GgufTypeOf<T>::value, true, v.size(),
               {reinterpret_cast<const uint8_t*>(v.data()), v.size_bytes()});
  }
  static GgufValue array(const std::vector<bool>& v);  // vector<bool> is not a span
  static GgufValue string(std::string s);
  static GgufValue string_array(std::vector<std::string> v);
  // Numeric scalar (`is_array` false, count 1) or array from packed bytes; `elem` must be a
  // fixed-size type and bytes.size() == count * size. Used by the reader.
  static GgufValue raw(GgufType elem, bool is_array, uint64_t count, std::span<const uint8_t> bytes);

  GgufType type() const { return is_array_ ? GgufType::kArray : elem_; }
  bool is_array() const { return is_array_; }
  GgufType elem_type() const { return elem_; }  // array element type, or the scalar's type
  uint64_t count() const { return count_; }     // array length; 1 for scalars
  std::string type_str() const;                 // "u32", "array[string]"

  // Exact-type access; throws Error naming the expected and actual type on a mismatch.
  template <typename T>
  T as() const {
    check_kind(GgufTypeOf<T>::value, false);
    T v;
    std::memcpy(&v, bytes_.data(), sizeof v);
    return v;
  }
  const std::string& as_string() const;
  template <typename T>
  std::vector<T> as_array() const {
    check_kind(GgufTypeOf<T>::value, true);
    if constexpr (std::is_same_v<T, bool>) {
      return std::vector<bool>(bytes_.begin(), bytes_.end());  // vector<bool> has no data()
    } else {
      std::vector<T> v(count_);
      if (count_) std::memcpy(v.data(), bytes_.data(), bytes_.size());
      return v;
    }
  }
  const std::vector<std::string>& as_string_array() const;
  std::span<const uint8_t> bytes() const { return bytes_; }  // numeric payload (packed LE)

  // Human-readable value for `temper inspect`: arrays show their first `max_elems` elements.
  std::string to_display(size_t max_elems = 8) const;

 private:
  void check_kind(GgufType elem, bool array) const;
  GgufType elem_ = GgufType::kU8;
  bool is_array_ = false;
  uint64_t count_ = 1;
  std::vector<uint8_t> bytes_ = {0};
  std::string str_;
  std::vector<std::string> strs_;
};

struct GgufKV {
  std::string key;
  GgufValue value;
  uint64_t offset = 0;  // where the KV starts in the file (0 for KVs not read from a file)
};

// ggml's view of a tensor, next to the PyTorch-order TensorInfo.
struct GgufTensorLayout {
  uint32_t n_dims = 1;
  std::array<int64_t, kGgufMaxDims> ne = {1, 1, 1, 1};  // ggml order: ne[0] is the row length
  uint64_t offset = 0;       // relative to the data section, as stored
  uint64_t file_offset = 0;  // absolute offset of the first data byte
};

// A GGUF v2/v3 file, memory-mapped. The constructor checks every header field against the
// file and ggml's rules and throws Error naming the file, the key or tensor, and the offset.
class GgufFile : public TensorSource {
 public:
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section

  // KVs in file order.
  const std::vector<GgufKV>& kvs() const { return kvs_; }
  bool has(std::string_view key) const { return find_value(key) != nullptr; }
  const GgufValue* find_value(std::string_view key) const;  // nullptr if absent
  const GgufValue& get(std::string_view key) const;         // throws naming the file and key
  // Typed getters: throw Error naming the file, the key and its actual type on a mismatch.
  template <typename T>
  T get_scalar(std::string_view key) const {
    return checked(key, GgufTypeOf<T>::value, false).template as<T>();
  }
  template <typename T>
  std::vector<T> get_array(std::string_view key) const {
    return checked(key, GgufTypeOf<T>::value, true).template as_array<T>();
  }
  const std::string& get_string(std::string_view key) const;
  const std::vector<std::string>& get_string_array(std::string_view key) const;
  uint32_t get_u32(std::string_view key) const { return get_scalar<uint32_t>(key); }
  int32_t get_i32(std::string_view key) const { return get_scalar<int32_t>(key); }
  uint64_t get_u64(std::string_view key) const { return get_scalar<uint64_t>(key); }
  float get_f32(std::string_view key) const { return get_scalar<float>(key); }
  bool get_bool(std::string_view key) const { return get_scalar<bool>(key); }
  std::vector<int32_t> get_i32_array(std::string_view key) const { return get_array<int32_t>(key); }
  std::vector<uint32_t> get_u32_array(std::string_view key) const { return get_array<uint32_t>(key); }
  std::vector<float> get_f32_array(std::string_view key) const { return get_array<float>(key); }

  // Tensors in file order; shapes in PyTorch order (reverse of ggml's ne).
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const GgufTensorLayout& layout(const TensorInfo& t) const;  // also accepts a copy (by name)
  // Zero-copy view into the mapping; `scratch` is not used.
  std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>& scratch) const override;
  void release(const TensorInfo& t) const override;

 private:
  friend class GgufParser;
  const GgufValue& checked(std::string_view key, GgufType elem, bool array) const;
  size_t index_of(const TensorInfo& t) const;

  MappedFile file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::vector<GgufTensorLayout> layouts_;  // parallel to tensors_
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Streams a GGUF v3 file: KVs and tensor infos first (offsets follow from them), then
// write_header(), then each tensor's bytes in declared order (in one or more chunks), then
// finish(). Tensor data never needs to be in memory at once. Nothing appears under the final
// name unless finish() succeeds.
class GgufWriter {
 public:
  // `out` must be empty; finish() commits it. `alignment` must be a power of two; if it is not
  // the default 32, "general.alignment" is written as the first KV.
  explicit GgufWriter(AtomicOutput& out, uint32_t alignment = kGgufDefaultAlignment);
  GgufWriter(const std::string& path, bool overwrite, uint32_t alignment = kGgufDefaultAlignment);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  const std::string& path() const { return out_->final_path(); }
  uint32_t alignment() const { return alignment_; }

  // KVs, written in insertion order. Keys must be non-empty and unique.
  void add(std::string key, GgufValue value);
  template <typename T>
  void add_scalar(std::string key, T v) { add(std::move(key), GgufValue::scalar<T>(v)); }
  void add_string(std::string key, std::string v) { add(std::move(key), GgufValue::string(std::move(v))); }
  void add_u32(std::string key, uint32_t v) { add_scalar<uint32_t>(std::move(key), v); }
  void add_i32(std::string key, int32_t v) { add_scalar<int32_t>(std::move(key), v); }
  void add_u64(std::string key, uint64_t v) { add_scalar<uint64_t>(std::move(key), v); }
  void add_f32(std::string key, float v) { add_scalar<float>(std::move(key), v); }
  void add_bool(std::string key, bool v) { add_scalar<bool>(std::move(key), v); }
  template <typename T>
  void add_array(std::string key, std::span<const T> v) { add(std::move(key), GgufValue::array<T>(v)); }
  void add_string_array(std::string key, std::vector<std::string> v) {
    add(std::move(key), GgufValue::string_array(std::move(v)));
  }
  bool has(std::string_view key) const;

  // Tensor infos, before write_header(). `shape` is PyTorch order (outermost first; a 0-d
  // shape is stored as [1]); `ne` is ggml order. Returns the tensor's data size in bytes.
  uint64_t add_tensor(std::string name, DType type, std::span<const int64_t> shape);
  uint64_t add_tensor_ne(std::string name, DType type, std::span<const int64_t> ne);
  size_t n_tensors() const { return tensors_.size(); }
  uint64_t tensor_offset(size_t i) const;  // relative to the data section

  void write_header();
  // Appends `bytes` to tensor `name`, which must be the tensor being written or, once that is
  // complete, the next one in declared order. Pads to the alignment after each tensor.
  void write_tensor_data(std::string_view name, std::span<const uint8_t> bytes);
  // Checks every tensor got exactly its byte count, then commits the output.
  void finish();

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    uint64_t nbytes, offset;
  };
  void init();
  void write_value(const GgufValue& v);
  void write_string(std::string_view s);
  void put(const void* p, size_t n) { out_->write(p, n); }
  template <typename T>
  void put(T v) { out_->write(&v, sizeof v); }

  std::unique_ptr<AtomicOutput> owned_;
  AtomicOutput* out_;
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<PendingTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  uint64_t data_size_ = 0;  // padded size of the data section so far
  enum class Stage { kMeta, kData, kDone } stage_ = Stage::kMeta;
  size_t current_ = 0;          // tensor being written
  uint64_t current_bytes_ = 0;  // bytes of it written so far
  uint64_t data_start_ = 0;     // absolute offset of the data section
};

}  // namespace temper
