// Llama (2, 3.x): pre-norm decoder, SiLU-gated MLP, GQA, RoPE with optional "llama3" or
// "linear" scaling. llama.cpp permutes q/k rows for its interleaved RoPE (kPermuteRopeQ/K).
#include "model/arch/common.h"

namespace temper {

namespace {
using namespace arch::shapes;

const TensorSpec kLlamaTensors[] = {
    {.role = TensorRole::kTokenEmbd, .hf_name = "model.embed_tokens.weight",
     .gguf_name = "token_embd.weight", .quant_class = QuantClass::kEmbedding, .shape = token_embd},
    {.role = TensorRole::kOutputNorm, .hf_name = "model.norm.weight",
     .gguf_name = "output_norm.weight", .quant_class = QuantClass::kKeepF32, .shape = model_vec},
    {.role = TensorRole::kOutput, .hf_name = "lm_head.weight", .gguf_name = "output.weight",
     .flags = kOptional, .quant_class = QuantClass::kOutput, .shape = output},
    {.role = TensorRole::kAttnNorm, .hf_name = "model.layers.{L}.input_layernorm.weight",
     .gguf_name = "blk.{L}.attn_norm.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kKeepF32, .shape = model_vec},
    {.role = TensorRole::kAttnQ, .hf_name = "model.layers.{L}.self_attn.q_proj.weight",
     .gguf_name = "blk.{L}.attn_q.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kPermuteRopeQ, .quant_class = QuantClass::kAttnQ, .shape = attn_q},
    {.role = TensorRole::kAttnK, .hf_name = "model.layers.{L}.self_attn.k_proj.weight",
     .gguf_name = "blk.{L}.attn_k.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kPermuteRopeK, .quant_class = QuantClass::kAttnK, .shape = attn_kv},
    {.role = TensorRole::kAttnV, .hf_name = "model.layers.{L}.self_attn.v_proj.weight",
     .gguf_name = "blk.{L}.attn_v.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kAttnV, .shape = attn_v},
    {.role = TensorRole::kAttnOut, .hf_name = "model.layers.{L}.self_attn.o_proj.weight",
     .gguf_name = "blk.{L}.attn_output.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kAttnOut, .shape = attn_out},
    // llama.cpp calls the pre-MLP norm ffn_norm; HF names it after the attention.
    {.role = TensorRole::kFfnNorm, .hf_name = "model.layers.{L}.post_attention_layernorm.weight",
     .gguf_name = "blk.{L}.ffn_norm.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kKeepF32, .shape = model_vec},
    {.role = TensorRole::kFfnGate, .hf_name = "model.layers.{L}.mlp.gate_proj.weight",
     .gguf_name = "blk.{L}.ffn_gate.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kFfnGate, .shape = ffn_up},
    {.role = TensorRole::kFfnUp, .hf_name = "model.layers.{L}.mlp.up_proj.weight",
     .gguf_name = "blk.{L}.ffn_up.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kFfnUp, .shape = ffn_up},
    {.role = TensorRole::kFfnDown, .hf_name = "model.layers.{L}.mlp.down_proj.weight",
     .gguf_name = "blk.{L}.ffn_down.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kFfnDown, .shape = ffn_down},
};

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
  for (int i = 0; i < cfg.n_layer; ++i) {
    layer.kv_source_layer = i;
    cfg.layers.push_back(layer);
  }
  validate_config(cfg);
  return cfg;
}

bool llama_ignorable(const ModelConfig&, std::string_view name) {
  return arch::is_rotary_buffer(name);
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
    .ignorable = llama_ignorable,
};

}  // namespace temper
