// Reads and writes the LoRA adapter .h5 (lora_adapter.h, docs/adapter-format.md) with the HDF5
// C API through the checkpoint's RAII helpers.
#include "formats/lora_adapter.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <type_traits>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "formats/h5_util.h"

namespace temper {

namespace {

constexpr int32_t kAdapterFormatVersion = 1;
// For an adapter (or training checkpoint) from a temper that wrote variable-length strings.
constexpr const char* kOlderFileRemedy =
    "rewrite it with scripts/h5_upgrade.py (h5py; only for a file you trust) or train it again";

// A 2-D float32 dataset read whole; throws naming it unless it is (rows, cols) of floats.
std::vector<float> read_matrix(const h5::Ctx& c, hid_t loc, const std::string& name,
                               int64_t& rows, int64_t& cols) {
  const std::string what = "/adapters/" + name;
  h5::Id ds(c.check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), what, "cannot open dataset"),
            H5Dclose);
  h5::Id type(c.check(H5Dget_type(ds.get()), what, "cannot get type"), H5Tclose);
  h5::Id space(c.check(H5Dget_space(ds.get()), what, "cannot get dataspace"), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4)
    c.fail(what, "expected 32-bit floats");
  if (H5Sget_simple_extent_ndims(space.get()) != 2) c.fail(what, "expected a 2-D matrix");
  if (h5::filter_count(ds.get()) != 0) c.fail(what, "stored with filters (temper writes it unfiltered)");
  hsize_t dims[2];
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (dims[0] == 0 || dims[1] == 0 || dims[0] > (1u << 24) || dims[1] > (1u << 24))
    c.fail(what, cat("implausible shape (", dims[0], ", ", dims[1], ")"));
  c.check_fits(what, dims[0] * dims[1], sizeof(float));  // stored unfiltered: the bytes are in the file
  rows = int64_t(dims[0]);
  cols = int64_t(dims[1]);
  std::vector<float> out(size_t(rows * cols));
  c.check_status(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                 what, "cannot read");
  for (size_t i = 0; i < out.size(); ++i)
    if (!std::isfinite(out[i])) c.fail(what, cat("element ", i, " is ", out[i]));
  return out;
}

// Dataset names of a group, in creation order when the group tracks it (temper's writer
// does), else by name.
std::vector<std::string> member_names(const h5::Ctx& c, hid_t group) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
  };
  hsize_t idx = 0;
  if (H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect, &names) < 0) {
    names.clear();
    idx = 0;
    c.check_status(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &names),
                   "/adapters", "cannot list datasets");
  }
  return names;
}

}  // namespace

LoraSpec parse_lora_spec(const std::string& spec) {
  LoraSpec s{spec, 1.0f};
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return s;
  const std::string tail = spec.substr(colon + 1);
  char* end = nullptr;
  const double v = std::strtod(tail.c_str(), &end);
  if (tail.empty() || end != tail.c_str() + tail.size()) {
    // Not a number: part of the path, unless that path does not exist and the tail looks meant
    // as a scale ("a.h5:x" for a mistyped "a.h5:1").
    TEMPER_CHECK(file_exists(spec) || !file_exists(spec.substr(0, colon)), "--lora ",
                 escaped(spec), ": scale '", escaped(tail), "' is not a number");
    return s;
  }
  TEMPER_CHECK(std::isfinite(v), "--lora ", escaped(spec), ": scale must be finite");
  s.path = spec.substr(0, colon);
  s.multiplier = float(v);
  return s;
}

float LoraAdapter::scale() const {
  return rslora ? float(double(alpha) / std::sqrt(double(rank))) : float(double(alpha) / rank);
}

LoraAdapter read_lora_adapter(const std::string& path) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), "LoRA adapter ", escaped(path),
               ": no such file");
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  const h5::Ctx c(path, kOlderFileRemedy);
  h5::Id file = h5::open_file(c, path);
  const hid_t root = file.get();
  const std::string format = h5::read_string(c, root, "format", true);
  if (format != "temper-lora")
    c.fail("/ attribute 'format'", cat("is '", escaped(format), "', expected 'temper-lora'"));
  const int32_t version = h5::read_i32(c, root, "format_version");
  if (version != kAdapterFormatVersion)
    c.fail("/ attribute 'format_version'", cat(version, " is not supported (expected ",
                                               kAdapterFormatVersion, ")"));
  LoraAdapter a;
  a.rank = h5::read_i32(c, root, "rank");
  a.alpha = h5::read_f32(c, root, "alpha");
  a.rslora = h5::read_i32(c, root, "rslora") != 0;
  if (a.rank <= 0) c.fail("/ attribute 'rank'", cat(a.rank, " is not positive"));
  if (!std::isfinite(a.alpha) || a.alpha == 0)
    c.fail("/ attribute 'alpha'", cat(a.alpha, " is not a finite non-zero number"));
  const float stored = h5::read_f32(c, root, "scale");
  if (std::fabs(stored - a.scale()) > 1e-6f * std::fabs(a.scale()))
    c.fail("/ attribute 'scale'", cat(stored, " disagrees with alpha ", a.alpha, ", rank ", a.rank,
                                      a.rslora ? " (rsLoRA)" : "", ": ", a.scale()));
  a.targets = h5::read_string(c, root, "targets", true);
  a.base_arch = h5::read_string(c, root, "base_arch", true);
  a.base_hf_architecture = h5::read_string(c, root, "base_hf_architecture", true);
  a.base_config_sha256 = h5::read_string(c, root, "base_config_sha256", true);
  if (h5::attr_exists(root, "training_args"))
    a.training_args = h5::read_string(c, root, "training_args", true);
  h5::Id group = h5::open_group(c, root, "adapters");
  std::map<std::string, size_t> index;  // module -> pairs index
  std::vector<bool> has_b;
  for (const std::string& name : member_names(c, group.get())) {
    const bool is_a = name.ends_with(".lora_A"), is_b = name.ends_with(".lora_B");
    if (!is_a && !is_b)
      c.fail("/adapters/" + name, "is neither a .lora_A nor a .lora_B dataset");
    const std::string module = name.substr(0, name.size() - 7);
    auto [it, fresh] = index.emplace(module, a.pairs.size());
    if (fresh) {
      a.pairs.push_back({});
      a.pairs.back().module = module;
      has_b.push_back(false);
    }
    LoraTensorPair& p = a.pairs[it->second];
    int64_t rows = 0, cols = 0;
    std::vector<float> m = read_matrix(c, group.get(), name, rows, cols);
    if (is_a) {
      if (rows != a.rank) c.fail("/adapters/" + name, cat("has ", rows, " rows, rank is ", a.rank));
      p.in = cols;
      p.a = std::move(m);
    } else {
      if (cols != a.rank) c.fail("/adapters/" + name, cat("has ", cols, " columns, rank is ", a.rank));
      p.out = rows;
      p.b = std::move(m);
      has_b[it->second] = true;
    }
  }
  for (size_t i = 0; i < a.pairs.size(); ++i) {
    if (a.pairs[i].a.empty()) c.fail("/adapters/" + a.pairs[i].module + ".lora_A", "missing");
    if (!has_b[i]) c.fail("/adapters/" + a.pairs[i].module + ".lora_B", "missing");
  }
  if (a.pairs.empty()) c.fail("/adapters", "holds no adapters");
  return a;
}

void write_lora_adapter(const std::string& path, bool overwrite, const LoraAdapter& a,
                        std::span<const std::string> inputs, const LoraExtraWriter& extra) {
  AtomicOutput out(path, overwrite, inputs);
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  const h5::Ctx c(path);
  {
    std::error_code ec;  // AtomicOutput may have created an empty placeholder
    std::filesystem::remove(out.temp_path(), ec);
  }
  h5::Id fapl = h5::file_access(c);
  h5::Id file(c.check(H5Fcreate(out.temp_path().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()),
                      "/", "cannot create file"),
              H5Fclose);
  const hid_t root = file.get();
  h5::write_string(c, root, "format", true, "temper-lora");
  h5::write_i32(c, root, "format_version", kAdapterFormatVersion);
  h5::write_i32(c, root, "rank", a.rank);
  const float alpha = a.alpha, scale = a.scale();
  h5::write_scalar(c, root, "alpha", true, H5T_IEEE_F32LE, &alpha);
  h5::write_scalar(c, root, "scale", true, H5T_IEEE_F32LE, &scale);
  h5::write_i32(c, root, "rslora", a.rslora ? 1 : 0);
  h5::write_string(c, root, "targets", true, a.targets);
  h5::write_string(c, root, "base_arch", true, a.base_arch);
  h5::write_string(c, root, "base_hf_architecture", true, a.base_hf_architecture);
  h5::write_string(c, root, "base_config_sha256", true, a.base_config_sha256);
  if (!a.base_tensors_sha256.empty())
    h5::write_string(c, root, "base_tensors_sha256", true, a.base_tensors_sha256);
  if (!a.base_path.empty()) h5::write_string(c, root, "base_path", true, a.base_path);
  h5::write_string(c, root, "training_args", true, a.training_args);
  h5::Id group = h5::create_group(c, root, "adapters", /*track_order=*/true);
  for (const LoraTensorPair& p : a.pairs) {
    TEMPER_CHECK(p.a.size() == size_t(a.rank * p.in) && p.b.size() == size_t(p.out * a.rank),
                 "adapter ", p.module, ": A/B sizes disagree with rank ", a.rank);
    h5::write_f32_matrix(c, group.get(), p.module + ".lora_A", p.a.data(), a.rank, p.in);
    h5::write_f32_matrix(c, group.get(), p.module + ".lora_B", p.b.data(), p.out, a.rank);
  }
  c.check_status(group.close_checked(), "/adapters", "cannot close group");
  static_assert(std::is_same_v<hid_t, int64_t>, "LoraExtraWriter passes the file id as int64_t");
  if (extra) extra(c, root);
  c.check_status(file.close_checked(), "/", "cannot flush and close the file");
  out.commit();
}

}  // namespace temper
