// Strict GGUF reader: every count, length, type id and offset is checked against the file and
// against the rules ggml's own reader enforces (ggml src/gguf.cpp gguf_init_from_reader), so a
// file we accept also loads in llama.cpp, and a hostile file cannot make us over-read or
// over-allocate. Errors name the file, the key or tensor, and the offset in the file.
#include <cctype>
#include <limits>

#include "core/escape.h"
#include "formats/gguf.h"

namespace temper {
namespace {

// Smallest possible encodings, used to bound counts before anything is allocated.
// KV: key length (8) + a 1-byte key + value type (4) + a 1-byte value.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
// Tensor info: name length (8) + 1-byte name + n_dims (4) + one ne (8) + type (4) + offset (8).
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

}  // namespace

// Parses the header of a mapped file into a GgufFile. `where_` says what is being read
// ("key 'general.name'", "tensor 3 'blk.0.attn_q.weight'") for error messages.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& g) : g_(g), f_(g.file_) {}

  void parse() {
    read_preamble();
    const uint64_t n_tensors = read<uint64_t>("tensor count");
    const uint64_t n_kv = read<uint64_t>("KV count");
    // Each KV and tensor info takes a minimum number of bytes, so counts the file cannot hold
    // are refused before anything is reserved.
    const uint64_t rem = remaining();
    if (n_kv > rem / kMinKvBytes)
      error_at(16, "KV count ", n_kv, " cannot fit in the ", rem, " bytes after the header");
    if (n_tensors > (rem - n_kv * kMinKvBytes) / kMinTensorInfoBytes)
      error_at(8, "tensor count ", n_tensors, " cannot fit in the ", rem, " bytes after the header");

    g_.kvs_.reserve(size_t(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) read_kv(i);
    read_alignment();

    g_.tensors_.reserve(size_t(n_tensors));
    g_.layouts_.reserve(size_t(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) read_tensor_info(i);
    place_tensor_data();
  }

 private:
  uint64_t remaining() const { return f_.size() - pos_; }

  template <typename... Args>
  [[noreturn]] void error_at(uint64_t offset, const Args&... args) const {
    fail(f_.path(), ": ", where_, where_.empty() ? "" : ": ", args..., " (at offset ", offset, ")");
  }

  void need(uint64_t n, std::string_view item) const {
    if (n > remaining())
      error_at(pos_, item, " needs ", n, " bytes but the file ends after ", remaining(), " (file size ",
               f_.size(), ")");
  }

  template <typename T>
  T read(std::string_view item) {
    need(sizeof(T), item);
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }

  // `item` names the string for errors; its u64 length prefix is checked first.
  std::string_view read_string(std::string_view item) {
    const uint64_t len = read<uint64_t>("string length");
    need(len, item);
    std::string_view s(reinterpret_cast<const char*>(f_.data() + pos_), size_t(len));
    pos_ += len;
    return s;
  }

  void read_preamble() {
    where_ = "header";
    need(4, "magic");
    if (std::memcmp(f_.data(), "GGUF", 4) != 0) {
      std::string shown;
      for (int i = 0; i < 4; ++i) shown += std::isprint(f_.data()[i]) ? char(f_.data()[i]) : '?';
      error_at(0, "not a GGUF file: magic is '", shown, "', expected 'GGUF'");
    }
    pos_ = 4;
    const uint32_t v = read<uint32_t>("version");
    // A big-endian file stores version 3 as bytes 00 00 00 03, which reads as 0x03000000
    // (ggml uses the same low-16-bits test).
    if (v != 0 && (v & 0xFFFF) == 0)
      error_at(4, "big-endian GGUF is not supported (version field reads as ", v, ", i.e. ",
               __builtin_bswap32(v), " byte-swapped)");
    if (v == 1) error_at(4, "GGUF version 1 is no longer supported (ggml refuses it too)");
    if (v == 0 || v > 3) error_at(4, "unsupported GGUF version ", v, " (supported: 2 and 3)");
    g_.version_ = v;
  }

  GgufType read_type(std::string_view item) {
    const uint64_t at = pos_;
    const uint32_t id = read<uint32_t>(item);
    if (id >= kGgufTypeCount) error_at(at, "invalid ", item, " ", int32_t(id), " (valid: 0..", kGgufTypeCount - 1, ")");
    return GgufType(id);
  }

  GgufValue read_value(GgufType type, bool is_array, uint64_t count) {
    if (type == GgufType::kString) {
      if (!is_array) return GgufValue::string(std::string(read_string("string value")));
      std::vector<std::string> strs;
      strs.reserve(size_t(count));
      for (uint64_t i = 0; i < count; ++i) strs.emplace_back(read_string("array element"));
      return GgufValue::string_array(std::move(strs));
    }
    const uint64_t size = gguf_type_size(type);
    const uint64_t at = pos_;
    need(count * size, "value");  // count was bounded by remaining() / size
    std::span<const uint8_t> bytes(f_.data() + pos_, size_t(count * size));
    if (type == GgufType::kBool)
      for (uint64_t i = 0; i < count; ++i)
        if (bytes[i] > 1) error_at(at + i, "bool value ", int(bytes[i]), " is neither 0 nor 1");
    pos_ += count * size;
    return GgufValue::raw(type, is_array, count, bytes);
  }

  void read_kv(uint64_t i) {
    const uint64_t start = pos_;
    where_ = cat("KV ", i);
    std::string key(read_string("key"));
    if (key.empty()) error_at(start, "empty key");
    where_ = cat("KV ", i, " '", escaped(key), "'");
    if (g_.kv_index_.count(key)) error_at(start, "duplicate key (first defined as KV ", g_.kv_index_[key], ")");

    GgufType type = read_type("value type");
    const bool is_array = type == GgufType::kArray;
    uint64_t count = 1;
    if (is_array) {
      const uint64_t at = pos_;
      type = read_type("array element type");
      if (type == GgufType::kArray) error_at(at, "nested arrays are not supported (ggml refuses them)");
      const uint64_t count_at = pos_;
      count = read<uint64_t>("array length");
      const uint64_t min_elem = type == GgufType::kString ? 8 : gguf_type_size(type);
      if (count > remaining() / min_elem)
        error_at(count_at, "array of ", count, " ", gguf_type_name(type), " elements cannot fit in the ",
                 remaining(), " bytes left in the file");
    }
    GgufValue value = read_value(type, is_array, count);
    g_.kv_index_.emplace(key, g_.kvs_.size());
    g_.kvs_.push_back({std::move(key), std::move(value), start});
  }

  void read_alignment() {
    where_ = "key 'general.alignment'";
    auto it = g_.kv_index_.find("general.alignment");
    if (it == g_.kv_index_.end()) return;
    const GgufKV& kv = g_.kvs_[it->second];
    if (kv.value.type() != GgufType::kU32)
      error_at(kv.offset, "must be of type u32 but is ", kv.value.type_str());
    const uint32_t a = kv.value.as<uint32_t>();
    if (!is_pow2(a)) error_at(kv.offset, "alignment ", a, " is not a power of two");
    g_.alignment_ = a;
  }

  void read_tensor_info(uint64_t i) {
    const uint64_t start = pos_;
    where_ = cat("tensor ", i);
    const std::string name(read_string("name"));
    if (name.empty()) error_at(start, "empty tensor name");
    where_ = cat("tensor ", i, " '", escaped(name), "'");
    if (name.size() > kGgufMaxTensorName)
      error_at(start, "name is ", name.size(), " bytes, at most ", kGgufMaxTensorName, " allowed");
    if (g_.tensor_index_.count(name)) error_at(start, "duplicate tensor name (first is tensor ", g_.tensor_index_[name], ")");

    GgufTensorLayout lay;
    const uint64_t dims_at = pos_;
    lay.n_dims = read<uint32_t>("n_dims");
    if (lay.n_dims < 1 || lay.n_dims > uint32_t(kGgufMaxDims))
      error_at(dims_at, "n_dims is ", lay.n_dims, ", expected 1..", kGgufMaxDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < lay.n_dims; ++d) {
      const uint64_t at = pos_;
      const int64_t ne = read<int64_t>("ne");
      if (ne < 0) error_at(at, "ne[", d, "] is negative (", ne, ")");
      // ggml keeps the element count below INT64_MAX.
      if (ne != 0 && numel >= uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(ne))
        error_at(at, "element count overflows at ne[", d, "] = ", ne);
      numel *= uint64_t(ne);
      lay.ne[d] = ne;
    }
    const uint64_t type_at = pos_;
    const uint32_t type_id = read<uint32_t>("type");
    const auto dtype = dtype_from_ggml_id(type_id);
    if (!dtype) error_at(type_at, "ggml type id ", int32_t(type_id), " is unknown or not supported by temper");
    const DTypeTraits& tr = dtype_traits(*dtype);
    if (lay.ne[0] % tr.block_elems != 0)
      error_at(type_at, "row length ne[0] = ", lay.ne[0], " is not a multiple of the ", tr.name, " block size ",
               tr.block_elems);
    const uint64_t blocks = numel / uint64_t(tr.block_elems);
    if (blocks > std::numeric_limits<uint64_t>::max() / uint64_t(tr.block_bytes))
      error_at(type_at, "byte size overflows");
    lay.offset = read<uint64_t>("data offset");

    TensorInfo info;
    info.name = name;
    info.dtype = *dtype;
    info.shape.assign(lay.ne.rbegin() + (kGgufMaxDims - lay.n_dims), lay.ne.rend());
    info.nbytes = blocks * uint64_t(tr.block_bytes);
    g_.tensor_index_.emplace(name, g_.tensors_.size());
    g_.tensors_.push_back(std::move(info));
    g_.layouts_.push_back(lay);
    info_offsets_.push_back(start);
  }

  // Data section: aligned after the infos (only if there are tensors, as in ggml), and tensors
  // packed in info order, each padded to the alignment: ggml refuses any other layout.
  void place_tensor_data() {
    const uint64_t a = g_.alignment_;
    uint64_t data = pos_;
    if (!g_.tensors_.empty()) {
      data = pos_ + (a - pos_ % a) % a;  // pos_ <= file size, so no overflow
      if (data > f_.size())
        error_at(pos_, "data section would start at ", data, ", past the end of the file (", f_.size(), " bytes)");
    }
    g_.data_offset_ = data;
    uint64_t expected = 0;
    for (size_t i = 0; i < g_.tensors_.size(); ++i) {
      const TensorInfo& t = g_.tensors_[i];
      GgufTensorLayout& lay = g_.layouts_[i];
      where_ = cat("tensor ", i, " '", escaped(t.name), "'");
      // The offset field is the last 8 bytes of the info record.
      const uint64_t field_at = (i + 1 < info_offsets_.size() ? info_offsets_[i + 1] : pos_) - 8;
      if (lay.offset != expected)
        error_at(field_at, "data offset is ", lay.offset, ", expected ", expected,
                 " (tensors must be packed in info order, each padded to ", a, " bytes)");
      const uint64_t size_left = f_.size() - data;
      if (t.nbytes > size_left || lay.offset > size_left - t.nbytes)
        error_at(field_at, "data (", t.nbytes, " bytes at file offset ", data + lay.offset,
                 ") extends past the end of the file (", f_.size(), " bytes)");
      lay.file_offset = data + lay.offset;
      // Both fit in the file, so the padded sum cannot overflow.
      expected = lay.offset + t.nbytes + (a - t.nbytes % a) % a;
    }
  }

  GgufFile& g_;
  const MappedFile& f_;
  uint64_t pos_ = 0;
  std::string where_;
  std::vector<uint64_t> info_offsets_;
};

GgufFile::GgufFile(const std::string& path) : file_(path) { GgufParser(*this).parse(); }

const GgufValue* GgufFile::find_value(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (!v) fail(path(), ": missing key '", key, "'");
  return *v;
}

const GgufValue& GgufFile::checked(std::string_view key, GgufType elem, bool array) const {
  const GgufValue& v = get(key);
  if (v.elem_type() != elem || v.is_array() != array)
    fail(path(), ": key '", key, "' is ", v.type_str(), ", expected ",
         array ? cat("array[", gguf_type_name(elem), "]") : std::string(gguf_type_name(elem)));
  return v;
}

const std::string& GgufFile::get_string(std::string_view key) const {
  return checked(key, GgufType::kString, false).as_string();
}

const std::vector<std::string>& GgufFile::get_string_array(std::string_view key) const {
  return checked(key, GgufType::kString, true).as_string_array();
}

size_t GgufFile::index_of(const TensorInfo& t) const {
  if (!tensors_.empty() && &t >= tensors_.data() && &t < tensors_.data() + tensors_.size())
    return size_t(&t - tensors_.data());
  auto it = tensor_index_.find(t.name);
  if (it == tensor_index_.end()) fail(path(), ": no tensor '", escaped(t.name), "'");
  return it->second;
}

const GgufTensorLayout& GgufFile::layout(const TensorInfo& t) const { return layouts_[index_of(t)]; }

std::span<const uint8_t> GgufFile::read(const TensorInfo& t, std::vector<uint8_t>&) const {
  const size_t i = index_of(t);
  auto bytes = file_.span(layouts_[i].file_offset, tensors_[i].nbytes, cat("tensor '", t.name, "'"));
  file_.advise_willneed(layouts_[i].file_offset, tensors_[i].nbytes);
  return bytes;
}

void GgufFile::release(const TensorInfo& t) const {
  const size_t i = index_of(t);
  file_.advise_dontneed(layouts_[i].file_offset, tensors_[i].nbytes);
}

}  // namespace temper
