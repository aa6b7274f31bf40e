// temper's LoRA adapter file (.h5; layout in docs/adapter-format.md) as plain data, with a
// reader and a writer. Lives in runtime/formats so the runtime (--lora), the adapter commands
// (lora export/import/merge) and train can all use it without depending on each other.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace temper {
namespace h5 {
class Ctx;
}

// One adapted projection: PEFT's lora_A (rank, in) and lora_B (out, rank), HF convention (for
// Llama q/k the rows of B follow the HF, unpermuted, order).
struct LoraTensorPair {
  std::string module;  // HF module name, e.g. "model.layers.0.self_attn.q_proj"
  int64_t in = 0, out = 0;
  std::vector<float> a;  // (rank, in)
  std::vector<float> b;  // (out, rank)
};

struct LoraAdapter {
  int rank = 0;
  float alpha = 0;
  bool rslora = false;  // scale alpha / sqrt(rank) instead of alpha / rank
  std::string targets;  // "q,k,v,o,gate,up,down" (a subset)
  std::string base_arch, base_hf_architecture, base_config_sha256;
  // Written by temper train (a fingerprint of the base's weights, the base as given); empty
  // for imported adapters, and then not written.
  std::string base_tensors_sha256, base_path;
  std::string training_args = "{}";  // JSON object
  std::vector<LoraTensorPair> pairs;
  // PEFT's `scaling`: alpha / rank, or alpha / sqrt(rank) with rsLoRA.
  float scale() const;
};

// `--lora ADAPTER[:SCALE]`: an adapter file and its multiplier (default 1). A suffix after the
// last ':' that is not a number is part of the path when that path exists.
struct LoraSpec {
  std::string path;
  float multiplier = 1;
};
// Throws Error naming the spec when SCALE is not a finite number.
LoraSpec parse_lora_spec(const std::string& spec);

// Reads and checks an adapter file: format and version, rank/alpha present and positive, the
// stored scale consistent with them, every lora_A paired with a lora_B of matching rank.
// Throws Error naming the file and the dataset or attribute at fault.
LoraAdapter read_lora_adapter(const std::string& path);

// Writes more groups into the file before it is closed (a training checkpoint's state);
// `root` is the file's hid_t.
using LoraExtraWriter = std::function<void(const h5::Ctx& c, int64_t root)>;

// Writes through a temporary file renamed into place; refuses an existing `path` unless
// `overwrite`, and never overwrites one of `inputs`. Throws Error naming the file.
void write_lora_adapter(const std::string& path, bool overwrite, const LoraAdapter& adapter,
                        std::span<const std::string> inputs = {},
                        const LoraExtraWriter& extra = {});

}  // namespace temper
