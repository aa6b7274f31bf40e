// Gemma 3 (text): sandwich-normed decoder whose RMSNorms scale by (1 + w) (llama.cpp adds the 1
// at conversion: kAddOne on every *norm.weight), q/k norm, 5 sliding : 1 global layers with
// separate RoPE bases, linear RoPE scaling on global layers only, attention scaled by
// query_pre_attn_scalar^-0.5, embeddings scaled by sqrt(hidden_size).
#include <cmath>

#include "formats/gguf.h"
#include "model/arch/common.h"
#include "model/gguf_keys.h"
#include "model/gguf_kv.h"

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

// What llama.cpp reads from the Gemma 3 keys the converter writes, against the model.
// src/models/gemma3.cpp llama_model_gemma3::load_arch_hparams, in the release of .llama-ref.
std::vector<LlamaCppIssue> gemma3_llama_cpp_issues(const ModelConfig& cfg, const GgufKvLookup& kv) {
  std::vector<LlamaCppIssue> issues;
  // Sliding layers: with gemma3.attention.sliding_window > 0 it calls load_swa_pattern(ml, 6)
  // (src/llama-model.cpp llama_model_base::load_swa_pattern): no pattern key is written (nor
  // by the converter), so llama_hparams::set_swa_pattern(6) (src/llama-hparams.cpp) makes
  // layer il slide iff il % 6 < 5. Without sliding_window no layer slides.
  const GgufValue* window = kv("gemma3.attention.sliding_window");
  const bool swa = window && window->as<uint32_t>() > 0;
  std::string differ;
  for (int il = 0; il < cfg.n_layer; ++il)
    if ((cfg.layers[il].window > 0) != (swa && il % 6 < 5))
      differ += cat(differ.empty() ? "" : ", ", il, cfg.layers[il].window > 0 ? " (sliding)" : " (global)");
  if (!differ.empty())
    issues.push_back({"sliding_window_pattern", cat("llama.cpp's gemma3 loader hard-codes 5 sliding : 1 global layers "
                      "(src/models/gemma3.cpp load_arch_hparams: load_swa_pattern(ml, 6)); it would get layers ",
                      differ, " wrong")});
  // Attention scale: 1/sqrt(head_dim), or 1/sqrt(n_embd / n_head) for 62 layers (27B); the
  // converter writes no key for query_pre_attn_scalar.
  const LayerConfig& l0 = cfg.layers[0];
  const float llama_scale = cfg.n_layer == 62 ? 1.0f / std::sqrt(float(cfg.d_model / l0.n_head))
                                              : 1.0f / std::sqrt(float(l0.head_dim));
  if (std::fabs(cfg.attn_scale - llama_scale) > 1e-6f * llama_scale)
    issues.push_back({"query_pre_attn_scalar", cat("attention scales by ", cfg.attn_scale, " (query_pre_attn_scalar = ",
                      1 / (cfg.attn_scale * cfg.attn_scale), ") but llama.cpp scales by ", llama_scale,
                      " (src/models/gemma3.cpp load_arch_hparams: f_attention_scale from head_dim)")});
  // RoPE: src/llama-model.cpp llama_model::get_rope_freq_base/_scale: sliding layers use
  // rope_freq_base_train_swa (gemma3.rope.freq_base_swa, else 10000) and
  // rope_freq_scale_train_swa (always 1: src/llama-hparams.h, no key sets it); global layers
  // the general rope.freq_base and rope.scaling.factor. The graph passes no rope_freqs
  // (src/models/gemma3.cpp: ggml_rope_ext(..., nullptr, ...)).
  const GgufValue* base_swa = kv("gemma3.rope.freq_base_swa");
  const GgufValue* factor = kv("gemma3.rope.scaling.factor");
  const float swa_base = base_swa ? base_swa->as<float>() : 10000.0f;
  const float global_scale = factor && factor->as<float>() != 0 ? 1 / factor->as<float>() : 1.0f;
  for (int il = 0; il < cfg.n_layer; ++il) {  // the first layer llama.cpp gets wrong is enough
    const LayerConfig& l = cfg.layers[il];
    const bool sliding = l.window > 0;
    const char* key = sliding ? "rope_parameters.sliding_attention" : "rope_scaling";
    const float scale = sliding ? 1.0f : global_scale;
    std::string why;
    if (!l.rope_freq_factors.empty())
      why = cat("layer ", il, " uses per-frequency RoPE factors (llama3-style scaling), which llama.cpp's gemma3 graph "
                "does not apply (src/models/gemma3.cpp: ggml_rope_ext without freq factors)");
    else if (sliding && l.rope_theta != swa_base)
      key = "rope_local_base_freq", why = cat("sliding layer ", il, " has RoPE base ", l.rope_theta, ", llama.cpp would "
                                               "use ", swa_base, " (llama_model::get_rope_freq_base)");
    else if (std::fabs(l.rope_pos_scale - scale) > 1e-6f * scale)
      why = cat(sliding ? "sliding" : "global", " layer ", il, " scales RoPE positions by ", l.rope_pos_scale,
                ", llama.cpp by ", scale, " (llama_model::get_rope_freq_scale", sliding ? ": always 1 on sliding layers" : "",
                ")");
    if (!why.empty()) {
      issues.push_back({key, why});
      break;
    }
  }
  return issues;
}

// ---- GGUF: llama.cpp conversion/gemma.py Gemma3Model, src/models/gemma3.cpp -------------

using namespace gguf_meta;

void gemma3_parameters(ArchKvContext& c) {
  text_model_parameters(c);
  const Hparams& hp = c.hp;
  c.kv.set(c.key("context_length"), u32_of(get_or(hp, "max_position_embeddings", 131072), "max_position_embeddings"));
  c.kv.set(c.key("attention.head_count"), u32_or_array_of(get_or(hp, "num_attention_heads", 8), "num_attention_heads"));
  c.kv.set(c.key("attention.layer_norm_rms_epsilon"), f32_of(get_or(hp, "rms_norm_eps", 1e-6), "rms_norm_eps"));
  const Json head_dim = get_or(hp, "head_dim", 256);
  c.kv.set(c.key("attention.key_length"), u32_of(head_dim, "head_dim"));
  c.kv.set(c.key("attention.value_length"), u32_of(head_dim, "head_dim"));
  const Json* full = get_in(c.rope_parameters, "full_attention");
  const Json& rp = full ? *full : c.rope_parameters;
  const Json* theta = rp.is_object() && rp.contains("rope_theta") ? &rp["rope_theta"] : nullptr;
  c.kv.set(c.key("rope.freq_base"), f32_of(theta ? *theta : Json(1000000.0), "rope_theta"));
  TEMPER_CHECK(!hp.get("attn_logit_softcapping"), hp.source(), ": attn_logit_softcapping is not supported by Gemma 3");
  if (const Json* cap = hp.get("final_logit_softcapping"); cap && truthy(*cap))
    c.kv.set(c.key("final_logit_softcapping"), f32_of(*cap, "final_logit_softcapping"));
  if (const Json* p = hp.get("sliding_window_pattern"); !p || *p != 1)
    c.kv.set(c.key("attention.sliding_window"), u32_of(hp.at("sliding_window"), "sliding_window"));
  c.kv.set(c.key("attention.head_count_kv"), u32_or_array_of(get_or(hp, "num_key_value_heads", 4), "num_key_value_heads"));
}

void gemma3_vocab(ArchKvContext& c) {
  if (set_vocab_sentencepiece(c)) c.kv.set("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(false));
  else set_vocab_gpt2(c);
}

// Gemma 3: layer il is SWA iff il % 6 < 5 (load_swa_pattern(6)) when sliding_window > 0; SWA
// layers use rope.freq_base_swa (llama-hparams.h default 10000) unscaled; attention is scaled by
// 1/sqrt(head_dim) (1/sqrt(n_embd/n_head) for the 62-layer 27B), query_pre_attn_scalar unused.
void finish_gemma3(const GgufFile&, const GgufKeys& k, ModelConfig& cfg) {
  const int window = k.integer("attention.sliding_window", 0);
  for (int il = 0; il < cfg.n_layer; ++il) {
    LayerConfig& l = cfg.layers[size_t(il)];
    const bool swa = window > 0 && il % 6 < 5;
    l.window = swa ? window : 0;
    if (!swa) continue;
    l.rope_theta = float(k.number("rope.freq_base_swa", 10000.0));
    l.rope_pos_scale = 1.0f;
  }
  const LayerConfig& l0 = cfg.layers.at(0);
  const double d = cfg.n_layer == 62 ? double(cfg.d_model) / l0.n_head : double(l0.head_dim);
  cfg.attn_scale = float(1.0 / std::sqrt(d));
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
    .llama_cpp_issues = gemma3_llama_cpp_issues,
    .gguf_write = {.parameters = gemma3_parameters, .vocab = gemma3_vocab},
    .gguf_read = GgufReadRules{.rope_style = RopeStyle::kHalf, .act = Activation::kGeluTanh, .post_norms = true,
                               .qk_norm = true, .embed_scale_sqrt_d = true, .finish = finish_gemma3},
};

}  // namespace temper
