// The trained adapter as the runtime's LoraAdapter, written by its one adapter-file writer
// (formats/lora_adapter.h; layout in docs/adapter-format.md), and the base's provenance.
#include "train/adapter_file.h"

#include <algorithm>

#include "core/sha256.h"
#include "formats/lora_adapter.h"

namespace temper::train {

std::string adapter_module_name(const LoraPair& p) {
  return "model.layers." + std::to_string(p.layer) + "." + p.hf_module();
}

std::string adapter_dataset_name(const LoraPair& p, bool is_b) {
  return adapter_module_name(p) + (is_b ? ".lora_B" : ".lora_A");
}

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
                   const LoraExtraWriter& extra) {
  const LoraConfig& cfg = model.config();
  LoraAdapter file;
  file.rank = cfg.rank;
  file.alpha = cfg.alpha;
  file.rslora = cfg.rslora;
  for (Target t : cfg.targets) {
    if (!file.targets.empty()) file.targets += ',';
    file.targets += target_name(t);
  }
  file.base_arch = base.config.arch;
  file.base_hf_architecture = base.config.hf_architecture;
  file.base_config_sha256 = prov.config_sha256;
  file.base_tensors_sha256 = prov.tensors_sha256;
  file.base_path = prov.base_path;
  file.training_args = prov.training_args_json;
  for (const LoraPair& p : model.pairs())
    file.pairs.push_back({adapter_module_name(p), p.in, p.out, p.a, p.b});
  const std::string inputs[] = {prov.base_path};
  write_lora_adapter(path, overwrite, file, inputs, extra);
}

}  // namespace temper::train
