// ArchSpec and TensorSpec: everything temper knows about one model architecture — HF config
// parsing, the tensor table (with llama.cpp names, conversion transforms and quantization
// classes), the GGUF keys llama.cpp's converter writes and how llama.cpp's loader reads them
// back, and what llama.cpp cannot represent. Adding an architecture is one file in
// runtime/model/arch/ plus one line in arch_registry.cpp (docs/adding-an-architecture.md).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "model/config.h"

namespace temper {

class GgufValue;
class GgufFile;
class GgufKeys;  // model/gguf_keys.h
namespace gguf_meta {
struct ArchKvContext;  // model/gguf_kv.h
}

// One thing the pinned llama.cpp release would read differently from the model (or refuse):
// the config.json key at fault and why, citing llama.cpp's file and function.
struct LlamaCppIssue {
  std::string key;
  std::string why;
};
// The value about to be written under a GGUF key (nullptr when the key is not written).
using GgufKvLookup = std::function<const GgufValue*(std::string_view key)>;

enum class TensorRole : uint8_t {
  kTokenEmbd, kOutputNorm, kOutput,
  kAttnNorm, kAttnQ, kAttnK, kAttnV, kAttnOut, kAttnQNorm, kAttnKNorm, kPostAttnNorm,
  kFfnNorm, kFfnGate, kFfnUp, kFfnDown, kPostFfnNorm,
  // Fused dense projections, bound as row blocks: q, k, v rows (n_head*hd, n_head_kv*hd,
  // n_head_kv*hd) stacked; gate rows then up rows (d_ff each).
  kAttnQkv, kFfnGateUp,
  // MoE
  kFfnGateInp, kFfnGateInpScale, kFfnGateExps, kFfnUpExps, kFfnDownExps, kFfnGateUpExps,
  kFfnDownExpsScale, kFfnPreNorm2, kFfnPostNorm1, kFfnPostNorm2,
  // Gemma 4 per-layer embeddings and layer scalar
  kPleTokenEmbd, kPleModelProj, kPleProjNorm, kPleInpGate, kPleProj, kPlePostNorm, kLayerScalar,
};

// How quantization policy sees a tensor: llama.cpp's categories (src/llama-quant.cpp
// tensor_get_category, which matches GGUF-name substrings); quantize/policy.cpp maps each class
// to one category, and tests/model/arch_test.cpp checks every row of every architecture against
// llama.cpp's substring rule. kKeepF32 and kOther tensors are never in a mix rule.
enum class QuantClass : uint8_t {
  kEmbedding, kOutput, kAttnQ, kAttnK, kAttnV, kAttnQkv, kAttnOut, kFfnGate, kFfnUp, kFfnDown,
  kFfnGateExps, kFfnUpExps, kFfnDownExps, kFfnGateUpExps, kKeepF32, kOther,
};

// Conversion-time transform llama.cpp's converter applies to this tensor on its way to GGUF.
enum class GgufTransform : uint8_t { kNone, kPermuteRopeQ, kPermuteRopeK, kAddOne };

enum TensorFlags : uint32_t {
  kPerLayer = 1u << 0,   // name contains {L}; one tensor per layer
  kOptional = 1u << 1,   // may be absent (e.g. lm_head when embeddings are tied)
  kPerExpert = 1u << 2,  // name also contains {E}; one tensor per expert (e.g. Qwen3-MoE)
};

struct TensorSpec {
  TensorRole role;
  std::string_view hf_name;    // canonical HF name, "{L}" = layer index, e.g.
                               // "model.layers.{L}.self_attn.q_proj.weight"
  std::string_view gguf_name;  // llama.cpp name, e.g. "blk.{L}.attn_q.weight"
  uint32_t flags = 0;
  GgufTransform to_gguf = GgufTransform::kNone;
  QuantClass quant_class = QuantClass::kOther;
  // HF (PyTorch, outermost-first) shape for `layer` (-1 for global tensors). Returns an empty
  // vector when this tensor does not exist for that layer/config (e.g. v_proj in a k_eq_v layer).
  std::function<std::vector<int64_t>(const ModelConfig&, int layer)> shape;
};

// One concrete tensor a given config expects.
struct ExpectedTensor {
  const TensorSpec* spec;
  int layer;                   // -1 for global tensors
  int expert;                  // -1 unless kPerExpert
  std::string hf_name;         // canonical HF name
  std::string gguf_name;
  std::vector<int64_t> shape;  // HF order
  bool required;
};

// Fused dense projections (kAttnQkv, kFfnGateUp) hold the rows of separate projections stacked,
// which the forward pass binds as row views and LoRA adapts one by one.
bool is_fused_projection(TensorRole role);
struct RowBlock {
  TensorRole role;  // the separate projection these rows are (kAttnQ, kAttnK, ..., kFfnUp)
  int64_t rows;
};
// The row blocks of `role` in `layer`, in storage order: q, k, v (n_head·hd, n_head_kv·hd twice)
// or gate, up (d_ff each). Empty when `role` is not fused.
std::vector<RowBlock> fused_row_blocks(TensorRole role, const LayerConfig& layer);

// How llama.cpp's converter writes this architecture's GGUF metadata: its ModelBase subclass's
// set_gguf_parameters (the <arch>.* keys, ending with general.file_type) and set_vocab (the
// tokenizer.ggml.* keys), restated over model/gguf_kv.h.
struct GgufWriteRules {
  void (*parameters)(gguf_meta::ArchKvContext&) = nullptr;
  void (*vocab)(gguf_meta::ArchKvContext&) = nullptr;
  // Keys the converter writes while preparing tensors (generate_extra_tensors), which is before
  // it writes any metadata: they follow general.architecture. nullptr = none.
  void (*tensor_keys)(gguf_meta::ArchKvContext&) = nullptr;
};

// How llama.cpp's loader and graph read a GGUF of this architecture beyond the generic <arch>.*
// keys (src/llama-model.cpp load_hparams, src/models/<arch>.cpp). The forward-pass features the
// GGUF does not state, plus `finish` for the per-layer extras (sliding windows, KV sharing, ...).
struct GgufReadRules {
  RopeStyle rope_style = RopeStyle::kHalf;  // as the GGUF stores q/k rows
  Activation act = Activation::kSilu;
  bool post_norms = false;
  bool qk_norm = false;
  bool v_norm = false;
  bool embed_scale_sqrt_d = false;  // embeddings times sqrt(n_embd)
  void (*finish)(const GgufFile& f, const GgufKeys& keys, ModelConfig& cfg) = nullptr;
};

struct ArchSpec {
  std::string_view id;                              // "llama", "gemma4", ...
  std::vector<std::string_view> hf_architectures;   // config.json "architectures" values
  std::string_view gguf_arch;                       // general.architecture in GGUF
  // Builds the config from config.json (already flattened: text_config merged into the root).
  // Throws Error naming the missing or mistyped key.
  std::function<ModelConfig(const Json& cfg)> parse_hf_config;
  std::span<const TensorSpec> tensors;
  // Maps a checkpoint tensor name to its canonical HF name (strips wrappers such as
  // "model.language_model."); returns nullopt for tensors of towers the text model does not
  // use (vision/audio), which conversion skips with a note.
  std::function<std::optional<std::string>(std::string_view name)> canonical_name;
  // Names (canonical) the checkpoint may contain that the model ignores (e.g. k/v of
  // Gemma 4 KV-shared layers); skipped with a note instead of refused.
  std::function<bool(const ModelConfig&, std::string_view canonical)> ignorable;
  // What llama.cpp cannot represent for `cfg`, given the GGUF keys about to be written; run
  // before any GGUF is written (quantize/llama_compat.h). Empty function = no known limits.
  std::function<std::vector<LlamaCppIssue>(const ModelConfig&, const GgufKvLookup&)> llama_cpp_issues;
  GgufWriteRules gguf_write;
  // How temper reads a GGUF whose general.architecture is gguf_arch. Exactly one architecture
  // per gguf_arch has them (Mistral writes "llama" GGUFs and leaves reading them to Llama);
  // tests/model/arch_test.cpp checks that.
  std::optional<GgufReadRules> gguf_read;
};

// The registry (arch_registry.cpp), in registration order.
std::span<const ArchSpec* const> all_archs();
// The architecture that reads GGUFs of `gguf_arch` (has gguf_read); nullptr when none does.
const ArchSpec* find_arch_by_gguf_name(std::string_view gguf_arch);
const ArchSpec* find_arch_by_id(std::string_view id);
// Throws Error listing the supported architectures when `hf_architecture` is unknown.
const ArchSpec& find_arch_by_hf_name(std::string_view hf_architecture);

// Every tensor `cfg` implies, in a stable order (globals first, then layer by layer).
std::vector<ExpectedTensor> expected_tensors(const ArchSpec& arch, const ModelConfig& cfg);

// The row of `arch` whose gguf_name pattern ("blk.{L}.attn_q.weight") matches a GGUF tensor
// name; nullptr when none does (e.g. generated tensors such as rope_freqs.weight).
const TensorSpec* find_tensor_spec_by_gguf_name(const ArchSpec& arch, std::string_view gguf_name);

// Replaces "{L}" and "{E}" in a name pattern with the layer and expert index.
std::string expand_name(std::string_view pattern, int layer, int expert = -1);

}  // namespace temper
