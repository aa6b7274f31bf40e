// HDF5 helpers for the checkpoint: handles, error translation and typed attribute/dataset I/O.
#include "formats/h5_util.h"

#include <algorithm>
#include <bit>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/escape.h"
#include "formats/checkpoint.h"
#include "formats/h5_zstd_filter.h"

static_assert(std::endian::native == std::endian::little,
              "the checkpoint writes and reads little-endian data without conversion");

namespace temper::h5 {

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex m;
  return m;
}

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    // No library shutdown at exit: after a failed close (a full disk while flushing an output
    // that is then deleted) HDF5 keeps a half-closed file, and shutting down crashed on it.
    // Every file we write is closed and checked before it counts, so there is nothing to flush.
    H5dont_atexit();
    if (H5open() < 0) fail("HDF5: cannot initialise the library");
    // Failures are reported as temper::Error with file and object names instead.
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    if (H5Zregister(&temper_h5z_zstd_class) < 0) fail("HDF5: cannot register the zstd filter (id 32015)");
  });
}

Id& Id::operator=(Id&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Id::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = H5I_INVALID_HID;
}

herr_t Id::close_checked() {
  herr_t st = (id_ >= 0 && close_) ? close_(id_) : 0;
  id_ = H5I_INVALID_HID;
  return st;
}

namespace {

herr_t innermost_error(unsigned n, const H5E_error2_t* e, void* out) {
  if (n == 0 && e && e->desc) *static_cast<std::string*>(out) = e->desc;
  return 0;
}

// HDF5's most specific message for the last failure (e.g. the write(2) errno text), then
// clears the stack so the next failure starts fresh.
std::string hdf5_detail() {
  std::string d;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, &d);
  H5Eclear2(H5E_DEFAULT);
  // I/O failures carry a long dump (time, fd, buffer address...); keep the cause and errno text.
  const std::string marker = "error message = '";
  if (auto at = d.find(marker); at != std::string::npos) {
    auto end = d.find('\'', at + marker.size());
    d = cat(d.substr(0, d.find(':')), ": ", d.substr(at + marker.size(), end - at - marker.size()));
  }
  std::replace(d.begin(), d.end(), '\n', ' ');
  if (d.size() > 400) d = d.substr(0, 400) + "...";
  return d;
}

}  // namespace

void Ctx::fail(std::string_view object, std::string_view what) const {
  std::string detail = hdf5_detail();
  // Object names come from the file: escaped (newlines, terminal escapes); values from the file
  // are escaped where they enter `what`.
  std::string msg = cat("checkpoint ", file_, ": ", escaped(object, 400), ": ", what);
  if (!detail.empty()) msg += cat(" (HDF5: ", escaped(detail), ")");
  throw Error(msg);
}

hid_t Ctx::check(hid_t id, std::string_view object, std::string_view what) const {
  if (id < 0) fail(object, what);
  return id;
}

void Ctx::check_status(herr_t st, std::string_view object, std::string_view what) const {
  if (st < 0) fail(object, what);
}

uint64_t Ctx::file_bytes() const {
  if (file_bytes_ == UINT64_MAX) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(file_, ec);
    if (ec) fail("/", cat("cannot read the file size: ", ec.message()));
    file_bytes_ = uint64_t(n);
  }
  return file_bytes_;
}

void Ctx::check_fits(std::string_view object, uint64_t n, uint64_t elem_bytes) const {
  if (elem_bytes > 0 && n > file_bytes() / elem_bytes)
    fail(object, cat(n, " elements of ", elem_bytes, " bytes cannot be stored in a file of ", file_bytes(), " bytes"));
}

Id file_access(const Ctx& c) {
  Id fapl(c.check(H5Pcreate(H5P_FILE_ACCESS), "/", "cannot create property list"), H5Pclose);
  c.check_status(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "/", "cannot set close degree");
  c.check_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), "/",
                 "cannot select the HDF5 1.10 file format");
  return fapl;
}

std::string unchecked_format_problem(const std::string& path) {
  // Superblock: 8 signature bytes, then its version (0 and 1: no checksums; 2 and 3: checksummed,
  // HDF5 >= 1.8 / 1.10). HDF5 also looks for it at 512, 1024... (a "user block"); temper writes
  // none, so only offset 0 is accepted.
  static constexpr char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  char head[9] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open for reading";
  in.read(head, sizeof head);
  if (in.gcount() != sizeof head || !std::equal(kSignature, kSignature + 8, head))
    return "not an HDF5 file (truncated or another format)";
  if (uint8_t(head[8]) < 2)
    return cat("HDF5 superblock version ", int(head[8]), " (a format without checksums, written by an older temper "
               "or another tool); this build reads only checksummed files (superblock 2 or 3)");
  return "";
}

Id open_file(const Ctx& c, const std::string& path) {
  if (std::string problem = unchecked_format_problem(path); !problem.empty())
    c.fail("/", problem.starts_with("HDF5 superblock") ? cat(problem, ": ", c.remedy()) : problem);
  Id fapl = file_access(c);
  return Id(c.check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), "/", "cannot open"), H5Fclose);
}

std::string path_of(hid_t obj) {
  ssize_t n = H5Iget_name(obj, nullptr, 0);
  if (n <= 0) return "?";
  std::string s(size_t(n) + 1, '\0');
  H5Iget_name(obj, s.data(), s.size());
  s.resize(size_t(n));
  return s;
}

std::string member_name(hid_t loc, std::string_view name, bool is_attr) {
  std::string p = path_of(loc);
  if (is_attr) return cat(p, " attribute '", name, "'");
  return p == "/" ? cat("/", name) : cat(p, "/", name);
}

Id fixed_utf8_type(size_t bytes) {
  Id t(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!t.valid() || H5Tset_size(t.get(), std::max<size_t>(bytes, 1)) < 0 || H5Tset_cset(t.get(), H5T_CSET_UTF8) < 0 ||
      H5Tset_strpad(t.get(), H5T_STR_NULLPAD) < 0)
    fail("HDF5: cannot build the UTF-8 string type");
  return t;
}

Id f16_le_type() {
  // binary16 = sign bit 15, exponent bits 10..14 (bias 15), mantissa bits 0..9. This is the
  // construction h5py uses for numpy float16, so h5py maps it back to float16.
  Id t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  if (!t.valid() || H5Tset_fields(t.get(), 15, 10, 5, 0, 10) < 0 || H5Tset_size(t.get(), 2) < 0 ||
      H5Tset_ebias(t.get(), 15) < 0)
    fail("HDF5: cannot build the float16 type");
  return t;
}

Id tensor_type(DType t) {
  hid_t base = H5I_INVALID_HID;
  switch (t) {
    case DType::kF16: return f16_le_type();
    case DType::kF32: base = H5T_IEEE_F32LE; break;
    case DType::kF64: base = H5T_IEEE_F64LE; break;
    case DType::kBF16: base = H5T_STD_U16LE; break;
    case DType::kI8: base = H5T_STD_I8LE; break;
    case DType::kI16: base = H5T_STD_I16LE; break;
    case DType::kI32: base = H5T_STD_I32LE; break;
    case DType::kI64: base = H5T_STD_I64LE; break;
    default: return Id();
  }
  Id id(H5Tcopy(base), H5Tclose);
  if (!id.valid()) fail("HDF5: cannot copy a datatype");
  return id;
}

int filter_count(hid_t ds) {
  Id dcpl(H5Dget_create_plist(ds), H5Pclose);
  return dcpl.valid() ? H5Pget_nfilters(dcpl.get()) : -1;
}

bool link_exists(hid_t loc, const char* name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }
bool attr_exists(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

Id open_group(const Ctx& c, hid_t loc, const char* name) {
  std::string what = member_name(loc, name, false);
  if (!link_exists(loc, name)) c.fail(what, "missing group");
  return Id(c.check(H5Gopen2(loc, name, H5P_DEFAULT), what, "cannot open group"), H5Gclose);
}

Id create_group(const Ctx& c, hid_t loc, const char* name, bool track_order) {
  std::string what = member_name(loc, name, false);
  Id gcpl(c.check(H5Pcreate(H5P_GROUP_CREATE), what, "cannot create property list"), H5Pclose);
  if (track_order)
    c.check_status(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
                   what, "cannot track creation order");
  return Id(c.check(H5Gcreate2(loc, name, H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), what, "cannot create group"),
            H5Gclose);
}

namespace {

// Creates an attribute or a contiguous dataset with `space` and writes `data` (memory type ==
// file type: stored as given, no conversion).
void write_object(const Ctx& c, hid_t loc, const char* name, bool is_attr, hid_t type, hid_t space,
                  const void* data, bool has_data) {
  std::string what = member_name(loc, name, is_attr);
  if (is_attr) {
    Id a(c.check(H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT), what, "cannot create"), H5Aclose);
    if (has_data) c.check_status(H5Awrite(a.get(), type, data), what, "cannot write");
    c.check_status(a.close_checked(), what, "cannot close");
  } else {
    Id d(c.check(H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), what, "cannot create"),
         H5Dclose);
    if (has_data) c.check_status(H5Dwrite(d.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what, "cannot write");
    c.check_status(d.close_checked(), what, "cannot close");
  }
}

Id scalar_space(const Ctx& c, std::string_view what) {
  return Id(c.check(H5Screate(H5S_SCALAR), what, "cannot create dataspace"), H5Sclose);
}

Id vector_space(const Ctx& c, std::string_view what, size_t n) {
  hsize_t dims[1] = {hsize_t(n)};
  return Id(c.check(H5Screate_simple(1, dims, nullptr), what, "cannot create dataspace"), H5Sclose);
}

void check_no_nul(const Ctx& c, hid_t loc, const char* name, bool is_attr, std::string_view s, size_t index) {
  if (s.find('\0') != std::string_view::npos)
    c.fail(member_name(loc, name, is_attr),
           cat("element ", index, " contains a NUL byte, which HDF5 strings cannot hold"));
}

}  // namespace

void write_scalar(const Ctx& c, hid_t loc, const char* name, bool is_attr, hid_t type, const void* v) {
  Id space = scalar_space(c, member_name(loc, name, is_attr));
  write_object(c, loc, name, is_attr, type, space.get(), v, true);
}

void write_string(const Ctx& c, hid_t loc, const char* name, bool is_attr, std::string_view s) {
  check_no_nul(c, loc, name, is_attr, s, 0);
  std::string padded(s);
  padded.resize(std::max<size_t>(s.size(), 1), '\0');  // HDF5 string types hold at least 1 byte
  Id type = fixed_utf8_type(padded.size());
  Id space = scalar_space(c, member_name(loc, name, is_attr));
  write_object(c, loc, name, is_attr, type.get(), space.get(), padded.data(), true);
}

void write_strings(const Ctx& c, hid_t loc, const char* name, std::span<const std::string> v) {
  std::string joined;  // each string followed by a NUL
  for (size_t i = 0; i < v.size(); ++i) {
    check_no_nul(c, loc, name, false, v[i], i);
    joined += v[i];
    joined += '\0';
  }
  write_array(c, loc, name, H5T_STD_U8LE, joined.data(), joined.size());
}

void write_array(const Ctx& c, hid_t loc, const char* name, hid_t type, const void* data, size_t n) {
  Id space = vector_space(c, member_name(loc, name, false), n);
  write_object(c, loc, name, false, type, space.get(), data, n > 0);
}

void write_f32_matrix(const Ctx& c, hid_t loc, const std::string& name, const float* data,
                      int64_t rows, int64_t cols) {
  const hsize_t dims[2] = {hsize_t(rows), hsize_t(cols)};
  Id space(c.check(H5Screate_simple(2, dims, nullptr), name, "cannot create dataspace"), H5Sclose);
  Id ds(c.check(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                           H5P_DEFAULT),
                name, "cannot create dataset"),
        H5Dclose);
  c.check_status(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name,
                 "cannot write");
  c.check_status(ds.close_checked(), name, "cannot close dataset");
}

namespace {

// An attribute or dataset opened for reading.
struct Var {
  const Ctx& c;
  std::string what;
  bool is_attr;
  Id obj, type, space;
  int rank = 0;
  size_t n = 0;

  Var(const Ctx& ctx, hid_t loc, const char* name, bool attr) : c(ctx), what(member_name(loc, name, attr)), is_attr(attr) {
    if (attr ? !attr_exists(loc, name) : !link_exists(loc, name)) c.fail(what, "missing");
    if (attr) {
      obj = Id(c.check(H5Aopen(loc, name, H5P_DEFAULT), what, "cannot open"), H5Aclose);
      type = Id(c.check(H5Aget_type(obj.get()), what, "cannot get type"), H5Tclose);
      space = Id(c.check(H5Aget_space(obj.get()), what, "cannot get dataspace"), H5Sclose);
    } else {
      obj = Id(c.check(H5Dopen2(loc, name, H5P_DEFAULT), what, "cannot open dataset"), H5Dclose);
      type = Id(c.check(H5Dget_type(obj.get()), what, "cannot get type"), H5Tclose);
      space = Id(c.check(H5Dget_space(obj.get()), what, "cannot get dataspace"), H5Sclose);
      if (filter_count(obj.get()) != 0) c.fail(what, "stored with filters (temper writes it unfiltered)");
    }
    rank = H5Sget_simple_extent_ndims(space.get());
    hssize_t np = H5Sget_simple_extent_npoints(space.get());
    if (rank < 0 || np < 0) c.fail(what, "cannot read dataspace");
    n = size_t(np);
  }
  void expect_scalar() const {
    if (rank > 1 || n != 1) c.fail(what, cat("expected a single value, found ", n, " in ", rank, " dims"));
  }
  void expect_list() const {
    if (rank != 1) c.fail(what, cat("expected a 1-D list, found ", rank, " dims"));
  }
  void expect_class(H5T_class_t cls, const char* name) const {
    if (H5Tget_class(type.get()) != cls) c.fail(what, cat("expected ", name, " data"));
  }
  // The stored elements fit in the file (before any buffer is sized by n).
  void expect_fits() const { c.check_fits(what, n, H5Tget_size(type.get())); }
  void read(hid_t mem, void* buf) const {
    if (n == 0) return;
    herr_t st = is_attr ? H5Aread(obj.get(), mem, buf) : H5Dread(obj.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    c.check_status(st, what, "cannot read");
  }
};

[[noreturn]] void fail_variable_length(const Var& v) {
  v.c.fail(v.what, cat("variable-length string (written by an older temper or another tool); this build reads "
                       "only fixed-length strings, since HDF5 keeps variable-length ones in an unchecked heap: ",
                       v.c.remedy()));
}

// One fixed-length string (any padding, ASCII or UTF-8); variable-length ones are refused
// before HDF5 reads them.
std::string read_fixed_string(const Var& v) {
  v.expect_class(H5T_STRING, "string");
  if (H5Tis_variable_str(v.type.get()) != 0) fail_variable_length(v);
  v.expect_scalar();
  v.expect_fits();
  const size_t sz = H5Tget_size(v.type.get());
  if (sz == 0) v.c.fail(v.what, "string type of size 0");
  std::string s(sz, '\0');
  v.read(v.type.get(), s.data());
  if (H5Tget_strpad(v.type.get()) == H5T_STR_SPACEPAD) s.erase(s.find_last_not_of(' ') + 1);
  else s.resize(std::min(s.find('\0'), s.size()));
  return s;
}

// Integers of any width and sign, range-checked into [lo, hi].
std::vector<int64_t> read_ints(const Var& v, int64_t lo, int64_t hi) {
  v.expect_class(H5T_INTEGER, "integer");
  v.expect_fits();
  std::vector<int64_t> out(v.n);
  v.read(H5T_NATIVE_INT64, out.data());
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i] < lo || out[i] > hi) v.c.fail(v.what, cat("element ", i, " = ", out[i], " is out of range [", lo, ", ", hi, "]"));
  return out;
}

template <typename To>
std::vector<To> narrow(const std::vector<int64_t>& v) {
  return std::vector<To>(v.begin(), v.end());
}

constexpr int64_t kI32Min = std::numeric_limits<int32_t>::min(), kI32Max = std::numeric_limits<int32_t>::max();

}  // namespace

std::string read_string(const Ctx& c, hid_t loc, const char* name, bool is_attr) {
  return read_fixed_string(Var(c, loc, name, is_attr));
}

std::vector<std::string> read_strings(const Ctx& c, hid_t loc, const char* name) {
  Var v(c, loc, name, false);
  if (H5Tget_class(v.type.get()) == H5T_STRING)
    c.fail(v.what, cat("a list of HDF5 strings (the layout of an older temper); this build stores lists of "
                       "strings as NUL-terminated UTF-8 bytes: ", c.remedy()));
  const std::vector<uint8_t> bytes = read_u8s(c, loc, name);
  if (!bytes.empty() && bytes.back() != 0) c.fail(v.what, "the last string is not NUL-terminated");
  std::vector<std::string> out;
  for (size_t at = 0; at < bytes.size();) {
    const size_t end = size_t(std::find(bytes.begin() + at, bytes.end(), uint8_t(0)) - bytes.begin());
    out.emplace_back(bytes.begin() + at, bytes.begin() + end);
    at = end + 1;
  }
  return out;
}

int32_t read_i32(const Ctx& c, hid_t loc, const char* name, bool is_attr) {
  Var v(c, loc, name, is_attr);
  v.expect_scalar();
  return int32_t(read_ints(v, kI32Min, kI32Max)[0]);
}

bool read_bool(const Ctx& c, hid_t loc, const char* name, bool is_attr) {
  Var v(c, loc, name, is_attr);
  v.expect_scalar();
  return read_ints(v, 0, 1)[0] != 0;
}

float read_f32(const Ctx& c, hid_t loc, const char* name, bool is_attr) {
  Var v(c, loc, name, is_attr);
  v.expect_scalar();
  v.expect_class(H5T_FLOAT, "floating-point");
  if (H5Tget_size(v.type.get()) != 4) c.fail(v.what, "expected 32-bit floats (a wider type would be rounded)");
  float out = 0;
  v.read(H5T_NATIVE_FLOAT, &out);
  return out;
}

std::vector<int32_t> read_i32s(const Ctx& c, hid_t loc, const char* name) {
  Var v(c, loc, name, false);
  v.expect_list();
  return narrow<int32_t>(read_ints(v, kI32Min, kI32Max));
}

std::vector<float> read_f32s(const Ctx& c, hid_t loc, const char* name) {
  Var v(c, loc, name, false);
  v.expect_list();
  v.expect_class(H5T_FLOAT, "floating-point");
  if (H5Tget_size(v.type.get()) != 4) c.fail(v.what, "expected 32-bit floats (a wider type would be rounded)");
  v.expect_fits();
  std::vector<float> out(v.n);
  v.read(H5T_NATIVE_FLOAT, out.data());
  return out;
}

std::vector<uint8_t> read_u8s(const Ctx& c, hid_t loc, const char* name) {
  Var v(c, loc, name, false);
  v.expect_list();
  v.expect_class(H5T_INTEGER, "integer");
  if (H5Tget_size(v.type.get()) != 1) c.fail(v.what, "expected 8-bit integers");
  v.expect_fits();
  std::vector<uint8_t> out(v.n);
  v.read(H5T_NATIVE_UINT8, out.data());
  return out;
}

std::vector<uint8_t> read_bools(const Ctx& c, hid_t loc, const char* name) {
  Var v(c, loc, name, false);
  v.expect_list();
  return narrow<uint8_t>(read_ints(v, 0, 1));
}

}  // namespace temper::h5

namespace temper {

void register_zstd_filter() {
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
}

}  // namespace temper
