// Gemma 3 (text): sandwich-normed decoder whose RMSNorms scale by (1 + w) (llama.cpp adds the 1
// at conversion: kAddOne on every *norm.weight), q/k norm, 5 sliding : 1 global layers with
// separate RoPE bases, linear RoPE scaling on global layers only, attention scaled by
// query_pre_attn_scalar^-0.5, embeddings scaled by sqrt(hidden_size).
#include <cmath>

#include "model/arch/common.h"

namespace temper {

namespace {
using namespace arch::shapes;

const TensorSpec kGemma3Tensors[] = {
    {.role = TensorRole::kTokenEmbd, .hf_name = "model.embed_tokens.weight",
     .gguf_name = "token_embd.weight", .quant_class = QuantClass::kEmbedding, .shape = token_embd},
    {.role = TensorRole::kOutputNorm, .hf_name = "model.norm.weight",
     .gguf_name = "output_norm.weight", .to_gguf = GgufTransform::kAddOne,
     .quant_class = QuantClass::kKeepF32, .shape = model_vec},
    {.role = TensorRole::kOutput, .hf_name = "lm_head.weight", .gguf_name = "output.weight",
     .flags = kOptional, .quant_class = QuantClass::kOutput, .shape = output},
    {.role = TensorRole::kAttnNorm, .hf_name = "model.layers.{L}.input_layernorm.weight",
     .gguf_name = "blk.{L}.attn_norm.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kAddOne, .quant_class = QuantClass::kKeepF32, .shape = model_vec},
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
     .to_gguf = GgufTransform::kAddOne, .quant_class = QuantClass::kKeepF32, .shape = head_vec},
    {.role = TensorRole::kAttnKNorm, .hf_name = "model.layers.{L}.self_attn.k_norm.weight",
     .gguf_name = "blk.{L}.attn_k_norm.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kAddOne, .quant_class = QuantClass::kKeepF32,
     .shape = kv_head_vec},
    {.role = TensorRole::kAttnOut, .hf_name = "model.layers.{L}.self_attn.o_proj.weight",
     .gguf_name = "blk.{L}.attn_output.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kAttnOut, .shape = attn_out},
    // In gemma archs HF's post_attention_layernorm is the post-attention sandwich norm and
    // pre_feedforward_layernorm is llama.cpp's ffn_norm.
    {.role = TensorRole::kPostAttnNorm,
     .hf_name = "model.layers.{L}.post_attention_layernorm.weight",
     .gguf_name = "blk.{L}.post_attention_norm.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kAddOne, .quant_class = QuantClass::kKeepF32, .shape = model_vec},
    {.role = TensorRole::kFfnNorm, .hf_name = "model.layers.{L}.pre_feedforward_layernorm.weight",
     .gguf_name = "blk.{L}.ffn_norm.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kAddOne, .quant_class = QuantClass::kKeepF32, .shape = model_vec},
    {.role = TensorRole::kFfnGate, .hf_name = "model.layers.{L}.mlp.gate_proj.weight",
     .gguf_name = "blk.{L}.ffn_gate.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kFfnGate, .shape = ffn_up},
    {.role = TensorRole::kFfnUp, .hf_name = "model.layers.{L}.mlp.up_proj.weight",
     .gguf_name = "blk.{L}.ffn_up.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kFfnUp, .shape = ffn_up},
    {.role = TensorRole::kFfnDown, .hf_name = "model.layers.{L}.mlp.down_proj.weight",
     .gguf_name = "blk.{L}.ffn_down.weight", .flags = kPerLayer,
     .quant_class = QuantClass::kFfnDown, .shape = ffn_down},
    {.role = TensorRole::kPostFfnNorm,
     .hf_name = "model.layers.{L}.post_feedforward_layernorm.weight",
     .gguf_name = "blk.{L}.post_ffw_norm.weight", .flags = kPerLayer,
     .to_gguf = GgufTransform::kAddOne, .quant_class = QuantClass::kKeepF32, .shape = model_vec},
};

// RoPE of one layer type. transformers v5 writes rope_parameters keyed by layer type; v4
// writes rope_theta + rope_scaling (global layers) and rope_local_base_freq (sliding layers).
void read_rope(const arch::ConfigView& c, bool sliding, LayerConfig& layer) {
  const auto params = c.get_object("rope_parameters");
  const auto typed = params ? params->get_object(sliding ? "sliding_attention" : "full_attention")
                            : std::nullopt;
  if (typed) {
    layer.rope_theta =
        static_cast<float>(typed->get_number("rope_theta", sliding ? 10000.0 : 1000000.0));
    arch::apply_rope_scaling(*typed, layer);
    return;
  }
  if (sliding) {
    layer.rope_theta = static_cast<float>(c.get_number("rope_local_base_freq", 10000.0));
    return;
  }
  layer.rope_theta = static_cast<float>(c.get_number("rope_theta", 1000000.0));
  if (const auto scaling = c.get_object("rope_scaling")) arch::apply_rope_scaling(*scaling, layer);
}

ModelConfig parse_gemma3(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // Gemma3TextConfig defaults; the multimodal configs leave most of them out of text_config.
  arch::read_common_fields(c, "gemma3",
                           {.hf_architecture = "Gemma3ForCausalLM", .n_ctx = 131072,
                            .norm_eps = 1e-6, .tied = true, .n_vocab = 262208},
                           cfg);
  arch::require_string(c, "hidden_activation", "gelu_pytorch_tanh");
  arch::require_false(c, "attention_bias");
  TEMPER_CHECK(!c.has("attn_logit_softcapping"), "config.json: key 'attn_logit_softcapping' is "
               "set, which temper does not support (Gemma 3 leaves it null)");
  cfg.act = Activation::kGeluTanh;
  cfg.norm_weight_offset = 1;
  cfg.post_norms = true;
  cfg.qk_norm = true;
  cfg.embed_scale = std::sqrt(static_cast<float>(cfg.d_model));
  cfg.attn_scale = static_cast<float>(1 / std::sqrt(c.get_number("query_pre_attn_scalar", 256)));
  cfg.final_softcap = static_cast<float>(c.get_number("final_logit_softcapping", 0));

  LayerConfig base;
  base.n_head = c.get_int("num_attention_heads", 8);
  base.n_head_kv = c.get_int("num_key_value_heads", 4);
  base.head_dim = c.get_int("head_dim", 256);
  base.n_rot = base.head_dim;
  base.d_ff = c.get_int("intermediate_size");
  const int window = c.get_int("sliding_window", 4096);
  const std::vector<bool> sliding =
      arch::sliding_layers(c, cfg.n_layer, c.get_int("sliding_window_pattern", 6), false);
  for (int i = 0; i < cfg.n_layer; ++i) {
    LayerConfig layer = base;
    layer.kv_source_layer = i;
    layer.window = sliding[i] ? window : 0;
    read_rope(c, sliding[i], layer);
    cfg.layers.push_back(layer);
  }
  validate_config(cfg);
  return cfg;
}

}  // namespace

extern const ArchSpec kGemma3Arch;
const ArchSpec kGemma3Arch{
    .id = "gemma3",
    .hf_architectures = {"Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"},
    .gguf_arch = "gemma3",
    .parse_hf_config = parse_gemma3,
    .tensors = kGemma3Tensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
};

}  // namespace temper
