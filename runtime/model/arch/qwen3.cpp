// Qwen 3 (dense): Llama-shaped decoder with an RMSNorm on every q and k head before RoPE
// (q_norm/k_norm, plain w scaling), explicit head_dim and NeoX RoPE, so no q/k permutation.
#include "model/arch/common.h"
#include "model/gguf_kv.h"

namespace temper {

namespace {

const std::vector<TensorSpec> kQwen3Tensors = arch::llama_style_tensors(true, false);

ModelConfig parse_qwen3(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // HF Qwen3Config defaults: max_position_embeddings 32768, rms_norm_eps 1e-6, untied,
  // head_dim 128.
  arch::read_common_fields(c, "qwen3", {.hf_architecture = "Qwen3ForCausalLM", .n_ctx = 32768},
                           cfg);
  arch::require_string(c, "hidden_act", "silu");
  arch::require_false(c, "attention_bias");
  arch::require_false(c, "use_sliding_window");
  cfg.act = Activation::kSilu;
  cfg.rope_style = RopeStyle::kHalf;
  cfg.qk_norm = true;

  LayerConfig layer = arch::read_uniform_attention(c, cfg.d_model, 128);
  layer.d_ff = c.get_int("intermediate_size");
  arch::repeat_layer(cfg, layer);
  validate_config(cfg);
  return cfg;
}

// What llama.cpp (release in .llama-ref) cannot represent: src/models/qwen3.cpp
// load_arch_hparams reads only the generic keys (llama_model_base::load_hparams: heads, head
// dims, rope.freq_base, linear rope.scaling.*, all as the converter writes them); its graph
// applies no rope_freqs. Sliding windows temper refuses when reading the config.
std::vector<LlamaCppIssue> qwen3_llama_cpp_issues(const ModelConfig& cfg, const GgufKvLookup&) {
  return arch::rope_freq_factors_issue(cfg, "src/models/qwen3.cpp");
}

// ---- GGUF: llama.cpp conversion/qwen.py Qwen3Model ---------------------------------------
// Qwen3 (Qwen2Model.set_gguf_parameters) adds only pooling for embedding models, which temper
// does not convert.

using namespace gguf_meta;

void qwen3_vocab(ArchKvContext& c) {  // Qwen2Model.set_vocab
  if (!set_vocab_sentencepiece(c)) set_vocab_gpt2(c);
}

}  // namespace

extern const ArchSpec kQwen3Arch;
const ArchSpec kQwen3Arch{
    .id = "qwen3",
    .hf_architectures = {"Qwen3ForCausalLM"},
    .gguf_arch = "qwen3",
    .parse_hf_config = parse_qwen3,
    .tensors = kQwen3Tensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
    .llama_cpp_issues = qwen3_llama_cpp_issues,
    .gguf_write = {.parameters = gguf_meta::text_model_parameters, .vocab = qwen3_vocab},
    .gguf_read = GgufReadRules{.rope_style = RopeStyle::kHalf, .act = Activation::kSilu, .qk_norm = true},
};

}  // namespace temper
