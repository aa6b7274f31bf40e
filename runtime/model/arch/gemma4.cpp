// Gemma 4 (text decoder of Gemma4ForConditionalGeneration and the text-only variants).
// Features by layer: sliding/full attention with different head dims, KV heads and RoPE
// (proportional RoPE on full layers as rope_freq_factors), K=V full layers, KV sharing by the
// last layers, double-wide MLP on shared layers, MoE beside the dense MLP, per-layer
// embeddings (PLE) and a per-layer output scalar. Norms scale by w (no +1), v is normed
// without a weight, attention is unscaled (1.0), logits are soft-capped.
#include <cmath>

#include "formats/gguf.h"
#include "model/arch/common.h"
#include "model/gguf_keys.h"
#include "model/gguf_kv.h"

namespace temper {

extern const ArchSpec kGemma3Arch;  // Gemma4Model extends Gemma3Model

namespace {
using namespace arch::shapes;
using arch::shapes::Shape;

bool has_ple(const ModelConfig& c) { return c.ple_dim > 0; }
bool has_moe(const ModelConfig& c, int l) { return c.layers.at(l).ffn != FfnKind::kDense; }

Shape ple_token_embd(const ModelConfig& c, int) {
  if (!has_ple(c)) return {};
  return {c.ple_vocab, int64_t{c.n_layer} * c.ple_dim};
}
Shape ple_model_proj(const ModelConfig& c, int) {
  if (!has_ple(c)) return {};
  return {int64_t{c.n_layer} * c.ple_dim, c.d_model};
}
Shape ple_vec(const ModelConfig& c, int) {
  if (!has_ple(c)) return {};
  return {c.ple_dim};
}
Shape ple_inp_gate(const ModelConfig& c, int) {
  if (!has_ple(c)) return {};
  return {c.ple_dim, c.d_model};
}
Shape ple_proj(const ModelConfig& c, int) {
  if (!has_ple(c)) return {};
  return {c.d_model, c.ple_dim};
}
Shape ple_model_vec(const ModelConfig& c, int) {
  if (!has_ple(c)) return {};
  return {c.d_model};
}
Shape per_expert_scale(const ModelConfig& c, int l) {
  if (!has_moe(c, l)) return {};
  return {c.layers[l].n_expert};
}
Shape experts_gate_up(const ModelConfig& c, int l) {  // fused: gate = first half of dim 1
  if (!has_moe(c, l)) return {};
  const LayerConfig& L = c.layers[l];
  return {L.n_expert, 2 * int64_t{L.d_ff_expert}, c.d_model};
}
Shape experts_down(const ModelConfig& c, int l) {
  if (!has_moe(c, l)) return {};
  const LayerConfig& L = c.layers[l];
  return {L.n_expert, c.d_model, L.d_ff_expert};
}
Shape layer_scalar(const ModelConfig& c, int l) {
  if (!c.layers.at(l).has_layer_scalar) return {};
  return {1};
}

constexpr uint32_t kL = kPerLayer;
constexpr QuantClass kF32 = QuantClass::kKeepF32;

const TensorSpec kGemma4Tensors[] = {
    {.role = TensorRole::kTokenEmbd, .hf_name = "model.embed_tokens.weight",
     .gguf_name = "token_embd.weight", .quant_class = QuantClass::kEmbedding, .shape = token_embd},
    {.role = TensorRole::kPleTokenEmbd, .hf_name = "model.embed_tokens_per_layer.weight",
     .gguf_name = "per_layer_token_embd.weight", .quant_class = QuantClass::kEmbedding,
     .shape = ple_token_embd},
    {.role = TensorRole::kPleModelProj, .hf_name = "model.per_layer_model_projection.weight",
     .gguf_name = "per_layer_model_proj.weight", .quant_class = QuantClass::kOther,
     .shape = ple_model_proj},
    {.role = TensorRole::kPleProjNorm, .hf_name = "model.per_layer_projection_norm.weight",
     .gguf_name = "per_layer_proj_norm.weight", .quant_class = kF32, .shape = ple_vec},
    {.role = TensorRole::kOutputNorm, .hf_name = "model.norm.weight",
     .gguf_name = "output_norm.weight", .quant_class = kF32, .shape = model_vec},
    {.role = TensorRole::kOutput, .hf_name = "lm_head.weight", .gguf_name = "output.weight",
     .flags = kOptional, .quant_class = QuantClass::kOutput, .shape = output},

    {.role = TensorRole::kAttnNorm, .hf_name = "model.layers.{L}.input_layernorm.weight",
     .gguf_name = "blk.{L}.attn_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = model_vec},
    {.role = TensorRole::kAttnQ, .hf_name = "model.layers.{L}.self_attn.q_proj.weight",
     .gguf_name = "blk.{L}.attn_q.weight", .flags = kL, .quant_class = QuantClass::kAttnQ,
     .shape = attn_q},
    {.role = TensorRole::kAttnQNorm, .hf_name = "model.layers.{L}.self_attn.q_norm.weight",
     .gguf_name = "blk.{L}.attn_q_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = head_vec},
    {.role = TensorRole::kAttnK, .hf_name = "model.layers.{L}.self_attn.k_proj.weight",
     .gguf_name = "blk.{L}.attn_k.weight", .flags = kL, .quant_class = QuantClass::kAttnK,
     .shape = attn_kv},
    {.role = TensorRole::kAttnV, .hf_name = "model.layers.{L}.self_attn.v_proj.weight",
     .gguf_name = "blk.{L}.attn_v.weight", .flags = kL, .quant_class = QuantClass::kAttnV,
     .shape = attn_v},
    {.role = TensorRole::kAttnKNorm, .hf_name = "model.layers.{L}.self_attn.k_norm.weight",
     .gguf_name = "blk.{L}.attn_k_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = kv_head_vec},
    {.role = TensorRole::kAttnOut, .hf_name = "model.layers.{L}.self_attn.o_proj.weight",
     .gguf_name = "blk.{L}.attn_output.weight", .flags = kL,
     .quant_class = QuantClass::kAttnOut, .shape = attn_out},
    {.role = TensorRole::kPostAttnNorm,
     .hf_name = "model.layers.{L}.post_attention_layernorm.weight",
     .gguf_name = "blk.{L}.post_attention_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = model_vec},
    {.role = TensorRole::kFfnNorm, .hf_name = "model.layers.{L}.pre_feedforward_layernorm.weight",
     .gguf_name = "blk.{L}.ffn_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = model_vec},
    {.role = TensorRole::kFfnGate, .hf_name = "model.layers.{L}.mlp.gate_proj.weight",
     .gguf_name = "blk.{L}.ffn_gate.weight", .flags = kL, .quant_class = QuantClass::kFfnGate,
     .shape = ffn_up},
    {.role = TensorRole::kFfnUp, .hf_name = "model.layers.{L}.mlp.up_proj.weight",
     .gguf_name = "blk.{L}.ffn_up.weight", .flags = kL, .quant_class = QuantClass::kFfnUp,
     .shape = ffn_up},
    {.role = TensorRole::kFfnDown, .hf_name = "model.layers.{L}.mlp.down_proj.weight",
     .gguf_name = "blk.{L}.ffn_down.weight", .flags = kL, .quant_class = QuantClass::kFfnDown,
     .shape = ffn_down},
    {.role = TensorRole::kPostFfnNorm,
     .hf_name = "model.layers.{L}.post_feedforward_layernorm.weight",
     .gguf_name = "blk.{L}.post_ffw_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = model_vec},
    // MoE block beside the dense MLP (26B-A4B).
    {.role = TensorRole::kFfnPostNorm1,
     .hf_name = "model.layers.{L}.post_feedforward_layernorm_1.weight",
     .gguf_name = "blk.{L}.post_ffw_norm_1.weight", .flags = kL, .quant_class = kF32,
     .shape = moe_vec},
    {.role = TensorRole::kFfnPreNorm2,
     .hf_name = "model.layers.{L}.pre_feedforward_layernorm_2.weight",
     .gguf_name = "blk.{L}.pre_ffw_norm_2.weight", .flags = kL, .quant_class = kF32,
     .shape = moe_vec},
    {.role = TensorRole::kFfnPostNorm2,
     .hf_name = "model.layers.{L}.post_feedforward_layernorm_2.weight",
     .gguf_name = "blk.{L}.post_ffw_norm_2.weight", .flags = kL, .quant_class = kF32,
     .shape = moe_vec},
    {.role = TensorRole::kFfnGateInp, .hf_name = "model.layers.{L}.router.proj.weight",
     .gguf_name = "blk.{L}.ffn_gate_inp.weight", .flags = kL, .quant_class = kF32,
     .shape = router},
    {.role = TensorRole::kFfnGateInpScale, .hf_name = "model.layers.{L}.router.scale",
     .gguf_name = "blk.{L}.ffn_gate_inp.scale", .flags = kL, .quant_class = kF32,
     .shape = moe_vec},
    {.role = TensorRole::kFfnDownExpsScale, .hf_name = "model.layers.{L}.router.per_expert_scale",
     .gguf_name = "blk.{L}.ffn_down_exps.scale", .flags = kL, .quant_class = kF32,
     .shape = per_expert_scale},
    {.role = TensorRole::kFfnGateUpExps, .hf_name = "model.layers.{L}.experts.gate_up_proj",
     .gguf_name = "blk.{L}.ffn_gate_up_exps.weight", .flags = kL,
     .quant_class = QuantClass::kFfnGateUpExps, .shape = experts_gate_up},
    {.role = TensorRole::kFfnDownExps, .hf_name = "model.layers.{L}.experts.down_proj",
     .gguf_name = "blk.{L}.ffn_down_exps.weight", .flags = kL,
     .quant_class = QuantClass::kFfnDownExps, .shape = experts_down},
    // Per-layer embeddings (E2B/E4B).
    {.role = TensorRole::kPleInpGate, .hf_name = "model.layers.{L}.per_layer_input_gate.weight",
     .gguf_name = "blk.{L}.inp_gate.weight", .flags = kL, .quant_class = QuantClass::kOther,
     .shape = ple_inp_gate},
    {.role = TensorRole::kPleProj, .hf_name = "model.layers.{L}.per_layer_projection.weight",
     .gguf_name = "blk.{L}.proj.weight", .flags = kL, .quant_class = QuantClass::kOther,
     .shape = ple_proj},
    {.role = TensorRole::kPlePostNorm,
     .hf_name = "model.layers.{L}.post_per_layer_input_norm.weight",
     .gguf_name = "blk.{L}.post_norm.weight", .flags = kL, .quant_class = kF32,
     .shape = ple_model_vec},
    {.role = TensorRole::kLayerScalar, .hf_name = "model.layers.{L}.layer_scalar",
     .gguf_name = "blk.{L}.layer_output_scale.weight", .flags = kL, .quant_class = kF32,
     .shape = layer_scalar},
};

// One layer type's entry of rope_parameters. "proportional" rotates only the first
// int(partial_rotary_factor * head_dim // 2) frequencies, with exponents over the full
// head_dim; llama.cpp expresses the rest as frequency divisors of 1e30 (no rotation).
void read_rope(const arch::ConfigView& p, LayerConfig& layer) {
  const std::string type = p.get_string("rope_type", "default");
  layer.rope_theta = static_cast<float>(p.get_number("rope_theta"));
  if (type != "proportional") {
    arch::apply_rope_scaling(p, layer);  // default / linear; refuses the rest by name
    return;
  }
  const double partial = p.get_number("partial_rotary_factor", 1.0);
  const double factor = p.get_number("factor", 1.0);
  TEMPER_CHECK(partial > 0 && partial <= 1 && factor > 0, "config.json: key '", p.key_name(""),
               "' needs 0 < partial_rotary_factor <= 1 and factor > 0");
  const int n_pairs = static_cast<int>(std::floor(partial * layer.head_dim / 2));
  if (n_pairs == layer.head_dim / 2 && factor == 1) return;
  layer.rope_freq_factors.assign(layer.head_dim / 2, 1e30f);
  for (int j = 0; j < n_pairs; ++j) layer.rope_freq_factors[j] = static_cast<float>(factor);
}

// Gemma4TextConfig's default rope_parameters.
const Json& default_rope_parameters() {
  static const Json kDefault = Json::parse(R"({
    "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0,
                       "rope_type": "proportional"},
    "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}})");
  return kDefault;
}

ModelConfig parse_gemma4(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  arch::read_common_fields(c, "gemma4",
                           {.hf_architecture = "Gemma4ForConditionalGeneration", .n_ctx = 131072,
                            .norm_eps = 1e-6, .tied = true, .n_vocab = 262144},
                           cfg);
  arch::require_string(c, "hidden_activation", "gelu_pytorch_tanh");
  arch::require_false(c, "attention_bias");
  TEMPER_CHECK(c.get_string("use_bidirectional_attention", "vision") == "vision",
               "config.json: key 'use_bidirectional_attention' is \"all\"; temper runs Gemma 4 "
               "as a causal text model only");
  cfg.act = Activation::kGeluTanh;
  cfg.post_norms = true;
  cfg.qk_norm = true;
  cfg.v_norm = true;
  cfg.embed_scale = std::sqrt(static_cast<float>(cfg.d_model));
  cfg.attn_scale = 1.0f;  // hard-coded in HF and llama.cpp; query_pre_attn_scalar is unused
  cfg.final_softcap = static_cast<float>(c.get_number("final_logit_softcapping", 0));
  cfg.ple_dim = c.get_int("hidden_size_per_layer_input", 0);
  if (cfg.ple_dim > 0) cfg.ple_vocab = c.get_int("vocab_size_per_layer_input", cfg.n_vocab);

  const int n_head = c.get_int("num_attention_heads");
  const int n_kv = c.get_int("num_key_value_heads");
  const bool k_eq_v = c.get_bool("attention_k_eq_v", false);
  // HF uses num_global_key_value_heads only together with attention_k_eq_v.
  const int n_kv_full = k_eq_v ? c.get_int("num_global_key_value_heads", n_kv) : n_kv;
  const int head_dim = c.get_int("head_dim", 256);
  const int head_dim_full = c.get_int("global_head_dim", 512);
  const int window = c.get_int("sliding_window", 512);
  const int d_ff = c.get_int("intermediate_size");
  const bool double_wide = c.get_bool("use_double_wide_mlp", false);
  const int n_shared = c.get_int("num_kv_shared_layers", 0);
  TEMPER_CHECK(n_shared >= 0 && n_shared < cfg.n_layer, "config.json: key "
               "'num_kv_shared_layers' must be in 0..", cfg.n_layer - 1, ", got ", n_shared);
  const bool moe = c.get_bool("enable_moe_block", false);
  const auto rope_obj = c.get_object("rope_parameters");
  const arch::ConfigView rope = rope_obj ? *rope_obj
                                         : arch::ConfigView(default_rope_parameters(),
                                                            "rope_parameters.");
  const arch::ConfigView default_rope(default_rope_parameters(), "rope_parameters.");

  const std::vector<bool> sliding = arch::sliding_layers(c, cfg.n_layer, 6, true);
  const int first_shared = cfg.n_layer - n_shared;
  for (int i = 0; i < cfg.n_layer; ++i) {
    LayerConfig l;
    l.n_head = n_head;
    l.n_head_kv = sliding[i] ? n_kv : n_kv_full;
    l.head_dim = sliding[i] ? head_dim : head_dim_full;
    l.n_rot = l.head_dim;
    l.window = sliding[i] ? window : 0;
    const char* type = sliding[i] ? "sliding_attention" : "full_attention";
    const auto type_rope = rope.get_object(type);
    read_rope(type_rope ? *type_rope : *default_rope.get_object(type), l);
    l.k_eq_v = k_eq_v && !sliding[i];
    // KV sharing: the donor is the last non-shared layer of the same attention type.
    l.kv_source_layer = i;
    if (i >= first_shared) {
      l.kv_source_layer = -1;
      for (int j = first_shared - 1; j >= 0 && l.kv_source_layer < 0; --j)
        if (sliding[j] == sliding[i]) l.kv_source_layer = j;
      TEMPER_CHECK(l.kv_source_layer >= 0, "config.json: layer ", i, " shares K/V "
                   "(num_kv_shared_layers = ", n_shared, ") but no earlier ", type,
                   " layer owns K/V");
      l.k_eq_v = false;  // the donor decides where V comes from
    }
    l.d_ff = (double_wide && i >= first_shared) ? 2 * d_ff : d_ff;
    if (moe) {
      l.ffn = FfnKind::kDenseAndMoe;
      l.n_expert = c.get_int("num_experts");
      l.n_expert_used = c.get_int("top_k_experts");
      l.d_ff_expert = c.get_int("moe_intermediate_size");
    }
    l.has_layer_scalar = true;
    cfg.layers.push_back(std::move(l));
  }
  validate_config(cfg);
  return cfg;
}

// HF's _keys_to_ignore_on_load_unexpected: K/V projections and norms of KV-shared layers.
bool gemma4_ignorable(const ModelConfig& cfg, std::string_view name) {
  if (arch::is_rotary_buffer(name)) return true;
  const auto split = arch::split_layer_name(name);
  if (!split || split->first >= cfg.n_layer) return false;
  if (cfg.layers[split->first].kv_source_layer == split->first) return false;
  for (std::string_view t : {"self_attn.k_proj.weight", "self_attn.v_proj.weight",
                             "self_attn.k_norm.weight", "self_attn.v_norm.weight"})
    if (split->second == t) return true;
  return false;
}

// KV sharing as llama.cpp does it (release in .llama-ref): src/models/gemma4.cpp
// load_arch_hparams sets n_layer_kv_from_start = n_layer - gemma4.attention.shared_kv_layers;
// src/llama-model.cpp llama_model::create_memory (the reuse lambda for LLM_ARCH_GEMMA4) makes
// a shared sliding layer read layer n_kv - 2 and a shared full layer n_kv - 1, asserting
// n_kv >= 2. The iSWA cache keeps sliding and full layers in separate caches, so a donor of
// the other type is not found: src/llama-kv-cache.cpp llama_kv_cache::llama_kv_cache aborts
// with GGML_ASSERT(map_layer_ids.find(il_reuse) != map_layer_ids.end()). HF's donor is the
// last non-shared layer of the same type; the two agree only when the last two non-shared
// layers are sliding, full.
std::vector<LlamaCppIssue> gemma4_llama_cpp_issues(const ModelConfig& cfg, const GgufKvLookup& kv) {
  const GgufValue* shared = kv("gemma4.attention.shared_kv_layers");
  const int n_kv = cfg.n_layer - (shared ? int(shared->as<uint32_t>()) : 0);
  for (int il = n_kv; il < cfg.n_layer; ++il) {
    const bool sliding = cfg.layers[il].window > 0;
    const int llama_donor = n_kv - (sliding ? 2 : 1);
    if (n_kv >= 2 && cfg.layers[il].kv_source_layer == llama_donor) continue;
    auto kind = [&](int l) { return l < 0 ? "none" : cfg.layers[l].window > 0 ? "sliding" : "full"; };
    return {{"num_kv_shared_layers", cat("shared ", kind(il), " layer ", il, " takes K/V from layer ",
             cfg.layers[il].kv_source_layer, " (the last non-shared ", kind(il), " layer), but llama.cpp takes them from "
             "layer ", llama_donor, " (", kind(llama_donor), "): it assumes the last two non-shared layers (see "
             "layer_types) are sliding then full, reads the wrong K/V otherwise and aborts loading when the donor is "
             "of the other type (src/llama-model.cpp create_memory, src/llama-kv-cache.cpp "
             "GGML_ASSERT(map_layer_ids.find(il_reuse) ...))")}};
  }
  return {};
}

// ---- GGUF: llama.cpp conversion/gemma.py Gemma4Model, src/models/gemma4-iswa.cpp --------

using namespace gguf_meta;

// Gemma4Model: global_head_dim, else the first full-attention layer's per_layer_config value.
const Json* gemma4_full_layer_value(const Hparams& hp, std::string_view direct, std::string_view per_layer_key) {
  if (const Json* v = hp.get(direct)) return v;
  const Json* plc = hp.get("per_layer_config");
  const Json* types = hp.get("layer_types");
  if (!plc || !plc->is_object() || !types || !types->is_array()) return nullptr;
  // JSON objects are key-sorted here; take layers in numeric order (the files list them so).
  std::vector<std::pair<long, const Json*>> layers;
  for (auto it = plc->begin(); it != plc->end(); ++it) layers.emplace_back(std::stol(it.key()), &*it);
  std::sort(layers.begin(), layers.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto [idx, cfg] : layers)
    if (idx >= 0 && size_t(idx) < types->size() && (*types)[size_t(idx)] == "full_attention")
      if (const Json* v = get_in(*cfg, per_layer_key)) return v;
  return nullptr;
}

void gemma4_parameters(ArchKvContext& c) {
  kGemma3Arch.gguf_write.parameters(c);  // Gemma4Model(Gemma3Model)
  const Hparams& hp = c.hp;
  const Json& n_shared = hp.at("num_kv_shared_layers");
  c.kv.set(c.key("attention.shared_kv_layers"), u32_of(n_shared, "num_kv_shared_layers"));
  const Json* ple = hp.get("hidden_size_per_layer_input");
  c.kv.set(c.key("embedding_length_per_layer_input"), u32_of(ple && truthy(*ple) ? *ple : Json(0), "hidden_size_per_layer_input"));

  // layer_types; when config.json leaves it to transformers' default, the parsed config's.
  std::vector<bool> swa;
  if (const Json* layer_types = hp.get("layer_types")) {
    TEMPER_CHECK(layer_types->is_array(), hp.source(), ": 'layer_types' must be a list");
    for (const Json& t : *layer_types) swa.push_back(t == "sliding_attention");
  } else {
    for (const LayerConfig& l : c.desc.config.layers) swa.push_back(l.window > 0);
  }
  c.kv.set(c.key("attention.sliding_window_pattern"), GgufValue::array(swa));

  const Json* head_dim_full = gemma4_full_layer_value(hp, "global_head_dim", "head_dim");
  TEMPER_CHECK(head_dim_full, hp.source(), ": need 'global_head_dim' (or a full-attention per_layer_config head_dim)");
  const Json& head_dim_swa = hp.at("head_dim");
  c.kv.set(c.key("attention.key_length"), u32_of(*head_dim_full, "global_head_dim"));
  c.kv.set(c.key("attention.value_length"), u32_of(*head_dim_full, "global_head_dim"));
  c.kv.set(c.key("attention.key_length_swa"), u32_of(head_dim_swa, "head_dim"));
  c.kv.set(c.key("attention.value_length_swa"), u32_of(head_dim_swa, "head_dim"));

  // The converter requires one of these keys to be present (a dense model has null); an absent
  // key is treated as null here instead of refusing the model.
  if (const Json* e = hp.find({"expert_intermediate_size", "moe_intermediate_size"}); non_null(e))
    c.kv.set(c.key("expert_feed_forward_length"), u32_or_array_of(*e, "moe_intermediate_size"));

  const Json& block_count = hp.at("num_hidden_layers");
  if (const Json* wide = hp.get("use_double_wide_mlp"); wide && truthy(*wide)) {
    const int64_t n_ff = hp.at("intermediate_size").get<int64_t>();
    const int64_t first_shared = block_count.get<int64_t>() - n_shared.get<int64_t>();
    std::vector<int32_t> arr;
    for (int64_t il = 0; il < block_count.get<int64_t>(); ++il) arr.push_back(int32_t(il < first_shared ? n_ff : 2 * n_ff));
    c.kv.set(c.key("feed_forward_length"), GgufValue::array<int32_t>(arr));
  }

  const Json* kv_full = gemma4_full_layer_value(hp, "num_global_key_value_heads", "num_key_value_heads");
  const Json* kv_swa = hp.get("num_key_value_heads");
  if (kv_full && kv_swa) {
    std::vector<int32_t> arr;
    for (bool s : swa) arr.push_back(i32_of(s ? *kv_swa : *kv_full, "num_key_value_heads").as<int32_t>());
    c.kv.set(c.key("attention.head_count_kv"), GgufValue::array<int32_t>(arr));
  }

  // n_rot_swa reads partial_rotary_factor from the top level of rope_parameters (1.0 when the
  // factor only sits under full_attention, as in every Gemma 4 config).
  const Json* prf = get_in(c.rope_parameters, "partial_rotary_factor");
  const double factor = prf ? prf->get<double>() : 1.0;
  c.kv.set(c.key("rope.dimension_count"), u32_of(Json(int64_t(head_dim_full->get<double>())), "global_head_dim"));
  c.kv.set(c.key("rope.dimension_count_swa"), u32_of(Json(int64_t(head_dim_swa.get<double>() * factor)), "head_dim"));

  // Deliberately unlike the converter (which writes the key only when set): llama.cpp's gemma4
  // loader keeps its default of 30 when the key is absent (llama-hparams.h:136,
  // f_final_logit_softcapping = 30.0f), so a config without a softcap would be capped at 30.
  // An explicit 0 turns the cap off there (gemma4.cpp: `if (f_final_logit_softcapping)`).
  if (const Json* cap = hp.get("final_logit_softcapping"); !cap || !truthy(*cap))
    c.kv.set(c.key("final_logit_softcapping"), GgufValue::scalar<float>(0.0f));
}

// Gemma 4: per-layer SWA pattern with its own head dim, RoPE base and n_rot; proportional RoPE
// (rope_freqs) on full layers; KV sharing by the last shared_kv_layers layers; K=V full layers
// (no attn_v); MoE beside the dense MLP; per-layer embeddings; layer output scalars.
void finish_gemma4(const GgufFile& f, const GgufKeys& k, ModelConfig& cfg) {
  const std::vector<double> swa = k.per_layer("attention.sliding_window_pattern", cfg.n_layer);
  const int window = k.integer("attention.sliding_window");
  const int head_dim_swa = k.integer("attention.key_length_swa");
  const int n_rot_swa = k.integer("rope.dimension_count_swa", head_dim_swa);
  const float theta_swa = float(k.number("rope.freq_base_swa", 10000.0));
  const int n_shared = k.integer("attention.shared_kv_layers", 0);
  const int first_shared = cfg.n_layer - n_shared;
  cfg.attn_scale = 1.0f;
  cfg.ple_dim = k.integer("embedding_length_per_layer_input", 0);
  if (cfg.ple_dim > 0) {
    const TensorInfo* ple = k.tensor("per_layer_token_embd.weight");
    TEMPER_CHECK(ple && ple->shape.size() == 2, f.path(), ": per_layer_token_embd.weight is missing or not 2-D");
    cfg.ple_vocab = int(ple->shape[0]);
  }
  for (int il = 0; il < cfg.n_layer; ++il) {
    LayerConfig& l = cfg.layers[size_t(il)];
    const bool is_swa = swa[size_t(il)] != 0;
    if (is_swa) {
      l.head_dim = head_dim_swa;
      l.n_rot = n_rot_swa;
      l.rope_theta = theta_swa;
      l.rope_pos_scale = 1.0f;
      l.window = window;
      l.rope_freq_factors.clear();
    }
    l.kv_source_layer = il;
    if (il >= first_shared) {  // donor: the last owning layer of the same type
      l.kv_source_layer = -1;
      for (int j = first_shared - 1; j >= 0 && l.kv_source_layer < 0; --j)
        if ((swa[size_t(j)] != 0) == is_swa) l.kv_source_layer = j;
      TEMPER_CHECK(l.kv_source_layer >= 0, f.path(), ": layer ", il, " shares K/V but no earlier layer of its type owns K/V");
    } else {
      l.k_eq_v = !is_swa && !k.has_layer_tensor(il, "attn_v.weight");
    }
    l.has_layer_scalar = k.has_layer_tensor(il, "layer_output_scale.weight");
    if (l.ffn != FfnKind::kDense) l.ffn = FfnKind::kDenseAndMoe;
  }
}

}  // namespace

extern const ArchSpec kGemma4Arch;
const ArchSpec kGemma4Arch{
    .id = "gemma4",
    .hf_architectures = {"Gemma4ForConditionalGeneration", "Gemma4ForCausalLM",
                         "Gemma4TextForCausalLM"},
    .gguf_arch = "gemma4",
    .parse_hf_config = parse_gemma4,
    .tensors = kGemma4Tensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = gemma4_ignorable,
    .llama_cpp_issues = gemma4_llama_cpp_issues,
    .gguf_write = {.parameters = gemma4_parameters, .vocab = set_vocab_gemma4},
    .gguf_read = GgufReadRules{.rope_style = RopeStyle::kHalf, .act = Activation::kGeluTanh, .post_norms = true,
                               .qk_norm = true, .v_norm = true, .embed_scale_sqrt_d = true, .finish = finish_gemma4},
};

}  // namespace temper
