// Private to the checkpoint code: RAII handles and typed attribute/dataset helpers over the
// HDF5 C API. Every failure becomes a temper::Error naming the file, the object and HDF5's
// innermost error message (HDF5's own stderr printing is switched off).
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace temper::h5 {

// Serial HDF5 is not thread-safe: every public checkpoint entry point holds this lock.
std::recursive_mutex& library_mutex();

// Once per process: silence HDF5's automatic error printing and register the zstd filter.
void init_library();

// An owned hid_t closed by the matching H5*close function.
class Id {
 public:
  Id() = default;
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept;
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();          // closes, ignoring errors (destructors, error paths)
  herr_t close_checked();  // closes and returns HDF5's status

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

// Names the file in every error: "checkpoint <file>: <object>: <what> (HDF5: <detail>)".
// `remedy` ends the error for a file in a format this build no longer reads (e.g. "re-run temper
// convert").
class Ctx {
 public:
  explicit Ctx(std::string file, std::string remedy = "re-create it with this temper")
      : file_(std::move(file)), remedy_(std::move(remedy)) {}
  const std::string& file() const { return file_; }
  const std::string& remedy() const { return remedy_; }
  [[noreturn]] void fail(std::string_view object, std::string_view what) const;
  hid_t check(hid_t id, std::string_view object, std::string_view what) const;
  void check_status(herr_t st, std::string_view object, std::string_view what) const;
  // Size of the file on disk (read once): no dataset or attribute read from it may need more
  // bytes than this (temper stores nothing compressed except tensors, which checkpoint_read
  // bounds separately).
  uint64_t file_bytes() const;
  // Fails naming `object` unless `n` elements of `elem_bytes` each fit in the file.
  void check_fits(std::string_view object, uint64_t n, uint64_t elem_bytes) const;

 private:
  std::string file_, remedy_;
  mutable uint64_t file_bytes_ = UINT64_MAX;
};

// The file-access property list of every .h5 temper writes: HDF5's 1.10 file format
// (superblock v3, v2 object headers, v2 B-trees, fixed-array chunk indexes), whose metadata
// carries Jenkins checksums, so a flipped byte in it is refused by the library instead of
// reaching its parsers; h5py and HDF5's tools from 1.10 on read it (Debian 12 ships 1.10.8).
// Also used for reading. H5F_CLOSE_STRONG: closing the file closes every object still open in it.
Id file_access(const Ctx& c);

// Why `path` is not an HDF5 file in a checksummed format, or "" if it is: its first bytes must
// be the HDF5 signature (at offset 0) and a superblock version >= 2. An older superblock means
// a file from an older temper or another tool.
std::string unchecked_format_problem(const std::string& path);

// Opens `path` read-only after unchecked_format_problem(), which fails with c.remedy().
Id open_file(const Ctx& c, const std::string& path);

// The HDF5 path of an open object ("/config"), for messages.
std::string path_of(hid_t obj);
// "<path>/<name>" or "<path> attribute '<name>'".
std::string member_name(hid_t loc, std::string_view name, bool is_attr);

// A fixed-length UTF-8 string type of `bytes` bytes (at least 1), NUL-padded. temper writes
// no variable-length strings: HDF5 keeps those in a "global heap" whose collections carry no
// checksum, and its reader (H5HG_read) overflowed on corrupted ones under fuzzing.
Id fixed_utf8_type(size_t bytes);
Id f16_le_type();      // IEEE binary16, little-endian: h5py reads it as numpy float16

// The stored HDF5 type of a tensor element type: f32/f64 IEEE LE, f16 as f16_le_type(), bf16 as
// u16 LE (HDF5 has no bfloat16), integers as signed LE. Invalid Id for block (quantized) types.
Id tensor_type(DType t);

// Number of filters (compression...) on dataset `ds`; -1 if unreadable. temper stores only
// tensors filtered (shuffle + zstd), so any other filtered dataset is refused before it is read:
// the bytes of an unfiltered one are in the file (so its size is bounded by the file's), and
// HDF5's other decoders (n-bit, scale-offset, szip...) are not exposed to the file.
int filter_count(hid_t ds);

bool link_exists(hid_t loc, const char* name);
bool attr_exists(hid_t obj, const char* name);
Id open_group(const Ctx& c, hid_t loc, const char* name);
Id create_group(const Ctx& c, hid_t loc, const char* name, bool track_order = false);

// Writing. `is_attr` selects an attribute of `loc` or a dataset (link) under `loc`. Scalar
// values get a scalar dataspace; lists a 1-D one (length 0 allowed). A string is a scalar
// fixed-length string; a list of strings is a 1-D uint8 dataset holding each string's UTF-8
// bytes followed by a NUL (h5py: `bytes(ds[()]).split(b"\0")[:-1]`).
void write_scalar(const Ctx& c, hid_t loc, const char* name, bool is_attr, hid_t type, const void* v);
void write_string(const Ctx& c, hid_t loc, const char* name, bool is_attr, std::string_view s);
void write_strings(const Ctx& c, hid_t loc, const char* name, std::span<const std::string> v);
void write_array(const Ctx& c, hid_t loc, const char* name, hid_t type, const void* data, size_t n);
// A 2-D little-endian f32 dataset (rows, cols), e.g. a LoRA matrix or its optimizer moments.
void write_f32_matrix(const Ctx& c, hid_t loc, const std::string& name, const float* data,
                      int64_t rows, int64_t cols);
inline void write_i32(const Ctx& c, hid_t loc, const char* name, int32_t v) {
  write_scalar(c, loc, name, true, H5T_STD_I32LE, &v);
}

// Reading. Missing objects, wrong type classes and wrong ranks are errors, checked before any
// data is read; so are sizes that do not fit in the file. Numbers are read into the requested
// native type only from the same class (no float -> int conversion). Variable-length strings
// are refused (never handed to HDF5's global-heap reader), with c.remedy().
std::string read_string(const Ctx& c, hid_t loc, const char* name, bool is_attr);
std::vector<std::string> read_strings(const Ctx& c, hid_t loc, const char* name);
int32_t read_i32(const Ctx& c, hid_t loc, const char* name, bool is_attr = true);
float read_f32(const Ctx& c, hid_t loc, const char* name, bool is_attr = true);
bool read_bool(const Ctx& c, hid_t loc, const char* name, bool is_attr = true);
std::vector<int32_t> read_i32s(const Ctx& c, hid_t loc, const char* name);
std::vector<float> read_f32s(const Ctx& c, hid_t loc, const char* name);
std::vector<uint8_t> read_u8s(const Ctx& c, hid_t loc, const char* name);
std::vector<uint8_t> read_bools(const Ctx& c, hid_t loc, const char* name);  // 0/1 each

}  // namespace temper::h5
