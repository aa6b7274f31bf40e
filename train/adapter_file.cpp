// Writes the adapter .h5 (see adapter_file.h and docs/adapter-format.md) with the HDF5 C API
// through the runtime's RAII helpers.
#include "train/adapter_file.h"

#include <filesystem>
#include <mutex>

#include "core/file.h"
#include "core/sha256.h"
#include "formats/h5_util.h"

namespace temper::train {

namespace {

constexpr int32_t kAdapterFormatVersion = 1;

// A 2-D little-endian f32 dataset (rows, cols) named `name` under `loc`.
void write_matrix(const h5::Ctx& c, hid_t loc, const std::string& name, const float* data,
                  int64_t rows, int64_t cols) {
  const hsize_t dims[2] = {hsize_t(rows), hsize_t(cols)};
  h5::Id space(c.check(H5Screate_simple(2, dims, nullptr), name, "cannot create dataspace"),
               H5Sclose);
  h5::Id ds(c.check(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                               H5P_DEFAULT, H5P_DEFAULT),
                    name, "cannot create dataset"),
            H5Dclose);
  c.check_status(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name,
                 "cannot write");
  c.check_status(ds.close_checked(), name, "cannot close dataset");
}

void write_attr_string(const h5::Ctx& c, hid_t loc, const char* name, const std::string& v) {
  h5::write_string(c, loc, name, true, v);
}

}  // namespace

void write_adapter(const std::string& path, bool overwrite, const LoraModel& model,
                   const ModelDescription& base, const std::string& base_path,
                   const std::string& training_args_json) {
  const std::string inputs[] = {base_path};
  AtomicOutput out(path, overwrite, inputs);
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  const h5::Ctx c(path);
  {
    std::error_code ec;  // AtomicOutput may have created an empty placeholder
    std::filesystem::remove(out.temp_path(), ec);
  }
  h5::Id file(c.check(H5Fcreate(out.temp_path().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT),
                      "/", "cannot create file"),
              H5Fclose);
  const hid_t root = file.get();
  const LoraConfig& cfg = model.config();
  write_attr_string(c, root, "format", "temper-lora");
  h5::write_i32(c, root, "format_version", kAdapterFormatVersion);
  h5::write_i32(c, root, "rank", cfg.rank);
  const float alpha = cfg.alpha, scale = cfg.scale();
  h5::write_scalar(c, root, "alpha", true, H5T_IEEE_F32LE, &alpha);
  h5::write_scalar(c, root, "scale", true, H5T_IEEE_F32LE, &scale);
  h5::write_i32(c, root, "rslora", cfg.rslora ? 1 : 0);
  std::string targets;
  for (Target t : cfg.targets) {
    if (!targets.empty()) targets += ',';
    targets += target_name(t);
  }
  write_attr_string(c, root, "targets", targets);
  write_attr_string(c, root, "base_arch", base.config.arch);
  write_attr_string(c, root, "base_hf_architecture", base.config.hf_architecture);
  // Checkpoints carry the hash of the config.json they were converted from; HF folders get it
  // from the file as read.
  std::string config_sha = base.provenance.config_sha256;
  if (config_sha.empty()) config_sha = sha256_hex(base.config_json);
  write_attr_string(c, root, "base_config_sha256", config_sha);
  write_attr_string(c, root, "training_args", training_args_json);
  h5::Id group = h5::create_group(c, root, "adapters", /*track_order=*/true);
  for (const LoraPair& p : model.pairs()) {
    const std::string module =
        "model.layers." + std::to_string(p.layer) + "." + p.hf_module();
    write_matrix(c, group.get(), module + ".lora_A", p.a.data(), cfg.rank, p.in);
    write_matrix(c, group.get(), module + ".lora_B", p.b.data(), p.out, cfg.rank);
  }
  c.check_status(group.close_checked(), "/adapters", "cannot close group");
  c.check_status(file.close_checked(), "/", "cannot flush and close the file");
  out.commit();
}

}  // namespace temper::train
