// Writes the adapter .h5 (see adapter_file.h and docs/adapter-format.md) with the HDF5 C API
// through the runtime's RAII helpers.
#include "train/adapter_file.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <type_traits>

#include "core/file.h"
#include "core/sha256.h"
#include "formats/h5_util.h"

namespace temper::train {

namespace {

constexpr int32_t kAdapterFormatVersion = 1;

void write_attr_string(const h5::Ctx& c, hid_t loc, const char* name, const std::string& v) {
  h5::write_string(c, loc, name, true, v);
}

}  // namespace

std::string adapter_dataset_name(const LoraPair& p, bool is_b) {
  return "model.layers." + std::to_string(p.layer) + "." + p.hf_module() + (is_b ? ".lora_B" : ".lora_A");
}

static_assert(std::is_same_v<hid_t, int64_t>, "ExtraWriter passes the file id as int64_t");

std::string base_config_sha256(const ModelDescription& base) {
  // Checkpoints carry the hash of the config.json they were converted from; HF folders get it
  // from the file as read.
  return base.provenance.config_sha256.empty() ? sha256_hex(base.config_json)
                                               : base.provenance.config_sha256;
}

std::string base_tensors_fingerprint(const TensorSource& tensors) {
  constexpr uint64_t kPiece = 64 << 10;
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : tensors.tensors()) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
  Sha256 h;
  std::vector<uint8_t> scratch;
  for (const TensorInfo* t : order) {
    std::string head = t->name;
    head.push_back('\0');
    head.append(dtype_name(t->dtype));
    head.push_back('\0');
    for (int64_t d : t->shape) head.append(std::to_string(d)).push_back(',');
    head.push_back('\0');
    h.update(head.data(), head.size());
    const std::span<const uint8_t> bytes = tensors.read(*t, scratch);
    if (bytes.size() <= 3 * kPiece) {
      h.update(bytes.data(), bytes.size());
    } else {
      for (uint64_t at : {uint64_t(0), (bytes.size() - kPiece) / 2, bytes.size() - kPiece})
        h.update(bytes.data() + at, kPiece);
    }
  }
  return h.hex_digest();
}

void write_adapter(const std::string& path, bool overwrite, const LoraModel& model,
                   const ModelDescription& base, const AdapterProvenance& prov,
                   const ExtraWriter& extra) {
  const std::string inputs[] = {prov.base_path};
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
  write_attr_string(c, root, "base_config_sha256", prov.config_sha256);
  write_attr_string(c, root, "base_tensors_sha256", prov.tensors_sha256);
  write_attr_string(c, root, "base_path", prov.base_path);
  write_attr_string(c, root, "training_args", prov.training_args_json);
  h5::Id group = h5::create_group(c, root, "adapters", /*track_order=*/true);
  for (const LoraPair& p : model.pairs()) {
    h5::write_f32_matrix(c, group.get(), adapter_dataset_name(p, false), p.a.data(), cfg.rank, p.in);
    h5::write_f32_matrix(c, group.get(), adapter_dataset_name(p, true), p.b.data(), p.out, cfg.rank);
  }
  c.check_status(group.close_checked(), "/adapters", "cannot close group");
  if (extra) extra(c, root);
  c.check_status(file.close_checked(), "/", "cannot flush and close the file");
  out.commit();
}

}  // namespace temper::train
