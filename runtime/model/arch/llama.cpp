// Llama (2, 3.x): pre-norm decoder, SiLU-gated MLP, GQA, RoPE with optional "llama3" or
// "linear" scaling. llama.cpp permutes q/k rows for its interleaved RoPE (kPermuteRopeQ/K).
#include "model/arch/common.h"

namespace temper {

namespace {

const std::vector<TensorSpec> kLlamaTensors = arch::llama_style_tensors(false, true);

ModelConfig parse_llama(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // HF LlamaConfig defaults: max_position_embeddings 2048, rms_norm_eps 1e-6, untied.
  arch::read_common_fields(c, "llama", {.hf_architecture = "LlamaForCausalLM", .n_ctx = 2048},
                           cfg);
  arch::require_string(c, "hidden_act", "silu");
  arch::require_false(c, "attention_bias");
  arch::require_false(c, "mlp_bias");
  cfg.act = Activation::kSilu;
  cfg.rope_style = RopeStyle::kHalf;

  LayerConfig layer = arch::read_uniform_attention(c, cfg.d_model, 0);
  layer.d_ff = c.get_int("intermediate_size");
  arch::repeat_layer(cfg, layer);
  validate_config(cfg);
  return cfg;
}

}  // namespace

extern const ArchSpec kLlamaArch;
const ArchSpec kLlamaArch{
    .id = "llama",
    .hf_architectures = {"LlamaForCausalLM"},
    .gguf_arch = "llama",
    .parse_hf_config = parse_llama,
    .tensors = kLlamaTensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
    // No llama.cpp limits (release in .llama-ref): llama_model_base::load_hparams
    // (src/llama-model.cpp) throws "invalid n_rot" for LLM_ARCH_LLAMA when rope.dimension_count
    // != key_length, but both come from head_dim (or hidden/heads), so they agree; linear
    // rope.scaling.* applies to every layer there; llama3 scaling is the rope_freqs tensor,
    // which src/models/llama.cpp applies. Other RoPE types temper refuses when reading.
};

}  // namespace temper
