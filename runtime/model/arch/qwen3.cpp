// Qwen 3 (dense): Llama-shaped decoder with an RMSNorm on every q and k head before RoPE
// (q_norm/k_norm, plain w scaling), explicit head_dim and NeoX RoPE, so no q/k permutation.
#include "model/arch/common.h"

namespace temper {

namespace {
using namespace arch::shapes;

const TensorSpec kQwen3Tensors[] = {
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
     .quant_class = QuantClass::kAttnQ, .shape = attn_q},
    {.role = TensorRole::kAttnK, .hf_name = "model.layers.{L}.self_attn.k_proj.weight",
     .gguf_name = "blk.{L}.attn_k.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kAttnK, .shape = attn_kv},
    {.role = TensorRole::kAttnV, .hf_name = "model.layers.{L}.self_attn.v_proj.weight",
     .gguf_name = "blk.{L}.attn_v.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kAttnV, .shape = attn_v},
    {.role = TensorRole::kAttnQNorm, .hf_name = "model.layers.{L}.self_attn.q_norm.weight",
     .gguf_name = "blk.{L}.attn_q_norm.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kKeepF32, .shape = head_vec},
    {.role = TensorRole::kAttnKNorm, .hf_name = "model.layers.{L}.self_attn.k_norm.weight",
     .gguf_name = "blk.{L}.attn_k_norm.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kKeepF32, .shape = kv_head_vec},
    {.role = TensorRole::kAttnOut, .hf_name = "model.layers.{L}.self_attn.o_proj.weight",
     .gguf_name = "blk.{L}.attn_output.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kAttnOut, .shape = attn_out},
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
  for (int i = 0; i < cfg.n_layer; ++i) {
    layer.kv_source_layer = i;
    cfg.layers.push_back(layer);
  }
  validate_config(cfg);
  return cfg;
}

bool qwen3_ignorable(const ModelConfig&, std::string_view name) {
  return arch::is_rotary_buffer(name);
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
    .ignorable = qwen3_ignorable,
};

}  // namespace temper
