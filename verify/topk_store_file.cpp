// The saved base reference: HDF5 layout, identity checks and the hashes they rest on.
//
// Layout (every name below the root; h5py: f.attrs["ctx"], f["topk_ids"][...]):
//   attributes  format = "temper-compare-base", format_version = 1,
//               protocol ("windows"|"llama"), ctx, stride, chunks, max_tokens, top_k, n_vocab, bos,
//               n_tokens_in_text, base_sha256, text_sha256, tokens_sha256, base_path, text_path
//   datasets    tokens (int32, n_tokens)           the scored token list
//               topk_ids (int32, n_scored x top_k)  base top-k ids, descending log-prob
//               topk_logp (float32, n_scored x top_k)
//               log_rest (float32, n_scored)        log of the probability outside the top-k (-inf: none)
//               nll (float64, n_scored)             base NLL of the true token
#include "topk_store_file.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/sha256.h"
#include "formats/h5_util.h"

namespace temper::verify {
namespace fs = std::filesystem;
using h5::Id;

namespace {

constexpr const char* kFormat = "temper-compare-base";
constexpr int kFormatVersion = 1;

// Names the file and object in every error; HDF5's own message is not needed to act on these.
struct File {
  std::string path;
  Id id;
  uint64_t file_bytes = 0;  // reading: the file's size, which bounds every array read from it
  [[noreturn]] void fail(std::string_view object, std::string_view what) const {
    H5Eclear2(H5E_DEFAULT);
    temper::fail("base reference ", path, ": ", object, ": ", what);
  }
  hid_t check(hid_t v, std::string_view object, std::string_view what) const {
    if (v < 0) fail(object, what);
    return v;
  }
};

void write_attr(const File& f, const char* name, hid_t type, const void* v) {
  Id space(f.check(H5Screate(H5S_SCALAR), name, "cannot create dataspace"), H5Sclose);
  Id a(f.check(H5Acreate2(f.id.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), name, "cannot create"),
       H5Aclose);
  f.check(H5Awrite(a.get(), type, v), name, "cannot write");
}
void write_attr(const File& f, const char* name, int64_t v) { write_attr(f, name, H5T_STD_I64LE, &v); }
void write_attr(const File& f, const char* name, const std::string& s) {
  if (s.find('\0') != std::string::npos) f.fail(cat("attribute '", name, "'"), "contains a NUL byte");
  std::string padded(s);
  padded.resize(std::max<size_t>(s.size(), 1), '\0');  // a fixed-length string (never variable-length)
  Id t = h5::fixed_utf8_type(padded.size());
  write_attr(f, name, t.get(), padded.data());
}

void write_dataset(const File& f, const char* name, hid_t type, std::vector<hsize_t> dims, const void* data) {
  Id space(f.check(H5Screate_simple(int(dims.size()), dims.data(), nullptr), name, "cannot create dataspace"), H5Sclose);
  Id d(f.check(H5Dcreate2(f.id.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), name,
               "cannot create"),
       H5Dclose);
  size_t n = 1;
  for (hsize_t x : dims) n *= size_t(x);
  if (n > 0) f.check(H5Dwrite(d.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name, "cannot write");
  f.check(d.close_checked(), name, "cannot close");
}

Id open_attr(const File& f, const char* name, H5T_class_t cls, const char* kind) {
  if (H5Aexists(f.id.get(), name) <= 0) f.fail(cat("attribute '", name, "'"), "missing");
  Id a(f.check(H5Aopen(f.id.get(), name, H5P_DEFAULT), name, "cannot open"), H5Aclose);
  Id t(f.check(H5Aget_type(a.get()), name, "cannot get type"), H5Tclose);
  if (H5Tget_class(t.get()) != cls) f.fail(cat("attribute '", name, "'"), cat("expected ", kind));
  return a;
}
int64_t read_int(const File& f, const char* name) {
  Id a = open_attr(f, name, H5T_INTEGER, "an integer");
  int64_t v = 0;
  f.check(H5Aread(a.get(), H5T_NATIVE_INT64, &v), name, "cannot read");
  return v;
}
// A fixed-length string attribute. Variable-length ones (files from an older temper) are refused
// before HDF5 reads them: it keeps them in a global heap without checksums.
std::string read_str(const File& f, const char* name) {
  Id a = open_attr(f, name, H5T_STRING, "a string");
  Id t(f.check(H5Aget_type(a.get()), name, "cannot get type"), H5Tclose);
  if (H5Tis_variable_str(t.get()) != 0)
    f.fail(cat("attribute '", name, "'"), "is a variable-length string (written by an older temper): write the "
                                          "file again with --save-base");
  Id space(f.check(H5Aget_space(a.get()), name, "cannot get dataspace"), H5Sclose);
  const size_t size = H5Tget_size(t.get());
  if (H5Sget_simple_extent_npoints(space.get()) != 1 || size == 0 || size > f.file_bytes)
    f.fail(cat("attribute '", name, "'"), "expected one string that fits in the file");
  std::string s(size, '\0');
  f.check(H5Aread(a.get(), t.get(), s.data()), name, "cannot read");
  s.resize(std::min(s.find('\0'), s.size()));
  return s;
}

// A dataset of the expected class and shape, read into `T` (HDF5 converts within the class).
template <typename T>
std::vector<T> read_dataset(const File& f, const char* name, hid_t mem_type, H5T_class_t cls,
                            std::vector<hsize_t> want) {
  if (H5Lexists(f.id.get(), name, H5P_DEFAULT) <= 0) f.fail(cat("dataset '", name, "'"), "missing");
  Id d(f.check(H5Dopen2(f.id.get(), name, H5P_DEFAULT), name, "cannot open"), H5Dclose);
  Id t(f.check(H5Dget_type(d.get()), name, "cannot get type"), H5Tclose);
  if (H5Tget_class(t.get()) != cls) f.fail(cat("dataset '", name, "'"), "has the wrong element type");
  if (h5::filter_count(d.get()) != 0) f.fail(cat("dataset '", name, "'"), "is stored with filters (temper writes it unfiltered)");
  if (cls == H5T_FLOAT && H5Tget_size(t.get()) > H5Tget_size(mem_type))
    f.fail(cat("dataset '", name, "'"), "is wider than expected (reading it would round)");
  Id space(f.check(H5Dget_space(d.get()), name, "cannot get dataspace"), H5Sclose);
  std::vector<hsize_t> dims(size_t(std::max(0, H5Sget_simple_extent_ndims(space.get()))));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (dims != want) {
    std::string got, exp;
    for (hsize_t x : dims) got += cat(got.empty() ? "" : " x ", x);
    for (hsize_t x : want) exp += cat(exp.empty() ? "" : " x ", x);
    f.fail(cat("dataset '", name, "'"), cat("has shape ", got, ", expected ", exp));
  }
  size_t n = 1;
  for (hsize_t x : want) {
    if (x > 0 && n > f.file_bytes / x) f.fail(cat("dataset '", name, "'"), "is larger than the file");
    n *= size_t(x);
  }
  // Stored unfiltered: its elements are bytes of the file.
  if (n > f.file_bytes / H5Tget_size(t.get())) f.fail(cat("dataset '", name, "'"), "is larger than the file");
  std::vector<T> v(n);
  if (n > 0) f.check(H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), name, "cannot read");
  return v;
}

// Element count of a dataset (its shape is checked when it is read).
hsize_t dataset_length(const File& f, const char* name) {
  if (H5Lexists(f.id.get(), name, H5P_DEFAULT) <= 0) f.fail(cat("dataset '", name, "'"), "missing");
  Id d(f.check(H5Dopen2(f.id.get(), name, H5P_DEFAULT), name, "cannot open"), H5Dclose);
  Id space(f.check(H5Dget_space(d.get()), name, "cannot get dataspace"), H5Sclose);
  return hsize_t(std::max<hssize_t>(0, H5Sget_simple_extent_npoints(space.get())));
}

}  // namespace

std::string hash_tokens(std::span<const int32_t> tokens) {
  Sha256 h;
  h.update(tokens.data(), tokens.size_bytes());  // little-endian hosts only (as the checkpoint code)
  return h.hex_digest();
}

void save_base_reference(AtomicOutput& out, const BaseReference& ref) {
  const std::string& path = out.final_path();
  {
    std::lock_guard lock(h5::library_mutex());
    h5::init_library();
    File f{path, Id()};
    Id fapl = h5::file_access(h5::Ctx(path));  // the checksummed 1.10 format, as every .h5 temper writes
    f.id = Id(f.check(H5Fcreate(out.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), "/",
                      "cannot create"),
              H5Fclose);
    write_attr(f, "format", std::string(kFormat));
    write_attr(f, "format_version", int64_t(kFormatVersion));
    write_attr(f, "protocol", std::string(protocol_name(ref.scoring.protocol)));
    write_attr(f, "ctx", int64_t(ref.scoring.ctx));
    write_attr(f, "stride", int64_t(ref.scoring.stride));
    write_attr(f, "chunks", int64_t(ref.scoring.chunks));
    write_attr(f, "max_tokens", int64_t(ref.scoring.max_tokens));
    write_attr(f, "top_k", int64_t(ref.store.k()));
    write_attr(f, "n_vocab", int64_t(ref.n_vocab));
    write_attr(f, "bos", int64_t(ref.bos));
    write_attr(f, "n_tokens_in_text", int64_t(ref.n_tokens_in_text));
    write_attr(f, "base_sha256", ref.base_sha256);
    write_attr(f, "text_sha256", ref.text_sha256);
    write_attr(f, "tokens_sha256", ref.tokens_sha256);
    write_attr(f, "base_path", ref.base_path);
    write_attr(f, "text_path", ref.text_path);
    const TopkStore::Arrays& a = ref.store.arrays();
    const hsize_t n = ref.store.size(), k = hsize_t(ref.store.k());
    write_dataset(f, "tokens", H5T_STD_I32LE, {ref.tokens.size()}, ref.tokens.data());
    write_dataset(f, "topk_ids", H5T_STD_I32LE, {n, k}, a.ids.data());
    write_dataset(f, "topk_logp", H5T_IEEE_F32LE, {n, k}, a.logp.data());
    write_dataset(f, "log_rest", H5T_IEEE_F32LE, {n}, a.log_rest.data());
    write_dataset(f, "nll", H5T_IEEE_F64LE, {n}, a.nll.data());
    f.check(f.id.close_checked(), "/", "cannot close (disk full?)");
  }
  out.commit();
}

BaseReference load_base_reference(const std::string& path) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), "base reference ", path, ": no such file");
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  File f{path, Id()};
  if (std::string problem = h5::unchecked_format_problem(path); !problem.empty())
    f.fail("/", problem.starts_with("HDF5 superblock") ? cat(problem, ": write the file again with --save-base") : problem);
  f.file_bytes = fs::file_size(path);
  Id fapl = h5::file_access(h5::Ctx(path));
  f.id = Id(f.check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), "/", "cannot open"), H5Fclose);
  if (H5Aexists(f.id.get(), "format") <= 0 || read_str(f, "format") != kFormat)
    f.fail("/", cat("not a compare base reference (no format = \"", kFormat, "\"; write one with --save-base)"));
  if (const int64_t v = read_int(f, "format_version"); v != kFormatVersion)
    f.fail("format_version", cat(v, " is not supported (this temper reads version ", kFormatVersion, ")"));
  BaseReference r;
  const std::string protocol = read_str(f, "protocol");
  if (protocol != "windows" && protocol != "llama") f.fail("protocol", cat("unknown protocol '", protocol, "'"));
  r.scoring.protocol = protocol == "llama" ? Protocol::kLlama : Protocol::kWindows;
  r.scoring.ctx = int(read_int(f, "ctx"));
  r.scoring.stride = int(read_int(f, "stride"));
  r.scoring.chunks = int(read_int(f, "chunks"));
  r.scoring.max_tokens = size_t(read_int(f, "max_tokens"));
  r.top_k = int(read_int(f, "top_k"));
  r.n_vocab = int(read_int(f, "n_vocab"));
  r.bos = int32_t(read_int(f, "bos"));
  r.n_tokens_in_text = size_t(read_int(f, "n_tokens_in_text"));
  r.base_sha256 = read_str(f, "base_sha256");
  r.text_sha256 = read_str(f, "text_sha256");
  r.tokens_sha256 = read_str(f, "tokens_sha256");
  r.base_path = read_str(f, "base_path");
  r.text_path = read_str(f, "text_path");
  if (r.top_k < 1 || r.n_vocab < 1 || r.top_k > r.n_vocab) f.fail("top_k", cat(r.top_k, " does not fit n_vocab ", r.n_vocab));
  const hsize_t n = dataset_length(f, "nll"), k = hsize_t(r.top_k);
  if (n == 0) f.fail("dataset 'nll'", "is empty");
  r.tokens = read_dataset<int32_t>(f, "tokens", H5T_NATIVE_INT32, H5T_INTEGER, {dataset_length(f, "tokens")});
  TopkStore::Arrays a;
  a.ids = read_dataset<int32_t>(f, "topk_ids", H5T_NATIVE_INT32, H5T_INTEGER, {n, k});
  a.logp = read_dataset<float>(f, "topk_logp", H5T_NATIVE_FLOAT, H5T_FLOAT, {n, k});
  a.log_rest = read_dataset<float>(f, "log_rest", H5T_NATIVE_FLOAT, H5T_FLOAT, {n});
  a.nll = read_dataset<double>(f, "nll", H5T_NATIVE_DOUBLE, H5T_FLOAT, {n});
  for (int32_t id : a.ids)
    if (id < 0 || id >= r.n_vocab) f.fail("dataset 'topk_ids'", cat("token id ", id, " is outside the vocabulary"));
  for (int32_t id : r.tokens)
    if (id < 0 || id >= r.n_vocab) f.fail("dataset 'tokens'", cat("token id ", id, " is outside the vocabulary"));
  if (hash_tokens(r.tokens) != r.tokens_sha256) f.fail("dataset 'tokens'", "does not match tokens_sha256");
  r.store = TopkStore(r.top_k, std::move(a));
  return r;
}

void check_base_reference(const std::string& path, const BaseReference& saved, const BaseReference& run) {
  std::vector<std::string> diffs;
  auto differs = [&](const char* what, const auto& got, const auto& want) {
    if (got != want) diffs.push_back(cat(what, " ", want, " (file: ", got, ")"));
  };
  differs("protocol", std::string(protocol_name(saved.scoring.protocol)), std::string(protocol_name(run.scoring.protocol)));
  differs("--ctx", saved.scoring.ctx, run.scoring.ctx);
  differs("stride", saved.scoring.stride, run.scoring.stride);
  differs("--chunks", saved.scoring.chunks, run.scoring.chunks);
  differs("--max-tokens", saved.scoring.max_tokens, run.scoring.max_tokens);
  differs("--top-k", saved.top_k, run.top_k);
  if (saved.text_sha256 != run.text_sha256)
    diffs.push_back(cat("text ", run.text_path, " (sha256 ", run.text_sha256.substr(0, 12), "; file made from ",
                        saved.text_path, ", sha256 ", saved.text_sha256.substr(0, 12), ")"));
  if (saved.base_sha256 != run.base_sha256)
    diffs.push_back(cat("base model ", run.base_path, " (sha256 ", run.base_sha256.substr(0, 12), "; file made from ",
                        saved.base_path, ", sha256 ", saved.base_sha256.substr(0, 12), ")"));
  // Same model and text but other tokens: the tokenizer changed (another temper version).
  if (diffs.empty() && (saved.tokens_sha256 != run.tokens_sha256 || saved.bos != run.bos))
    diffs.push_back("tokens: the base's tokenizer now encodes the text differently from when the file was made");
  differs("vocabulary size", saved.n_vocab, run.n_vocab);
  if (diffs.empty()) return;
  std::string msg;
  for (const std::string& d : diffs) msg += cat(msg.empty() ? "" : "; ", d);
  fail("--base-ref ", path, " does not fit this run: ", msg, ". Run without --base-ref (or with --save-base to refresh it)");
}

}  // namespace temper::verify
