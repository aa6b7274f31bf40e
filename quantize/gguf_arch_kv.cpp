// Per-architecture GGUF hyperparameters and vocabulary choice, restating llama.cpp's converter
// classes (conversion/base.py TextModel, llama.py LlamaModel, gemma.py Gemma3Model/Gemma4Model,
// qwen.py Qwen3Model/Qwen3MoeModel). Adding an architecture = one function + one kArchKv row.
#include <algorithm>

#include "core/error.h"
#include "quantize/gguf_metadata_internal.h"

namespace temper::gguf_meta {
namespace {

const Json* get_in(const Json& obj, std::string_view key) {  // dict.get on a JSON object
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool non_null(const Json* v) { return v && !v->is_null(); }

// ---- LlamaModel -------------------------------------------------------------------------

void llama_parameters(ArchKvContext& c) {
  text_model_parameters(c);
  c.kv.set(c.key("vocab_size"), u32_of(c.hp.at("vocab_size"), "vocab_size"));
  if (const Json* hd = c.hp.get("head_dim")) {
    c.kv.set(c.key("rope.dimension_count"), u32_of(*hd, "head_dim"));
  } else {
    const Json& h = c.hp.at("hidden_size");
    const Json& n = c.hp.at("num_attention_heads");
    TEMPER_CHECK(h.is_number_integer() && n.is_number_integer() && n.get<int64_t>() > 0, c.hp.source(),
                 ": hidden_size and num_attention_heads must be integers");
    c.kv.set(c.key("rope.dimension_count"), u32_of(Json(h.get<int64_t>() / n.get<int64_t>()), "hidden_size / num_attention_heads"));
  }
}

void llama_vocab(ArchKvContext& c) {
  if (!c.desc.tokenizer.tokenizer_config_json.empty()) {
    const Json tc = parse_json(c.desc.tokenizer.tokenizer_config_json, "tokenizer_config.json");
    if (const Json* p = get_in(tc, "add_prefix_space"))
      c.kv.set("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(truthy(*p)));
  }
  if (!set_vocab_sentencepiece(c) && !set_vocab_llama_hf(c)) set_vocab_gpt2(c);
  // Granite small models (vocab 49152) do not add BOS.
  if (const Json* v = c.hp.get("vocab_size"); v && *v == 49152)
    c.kv.set("tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(false));
}

// ---- Gemma3Model ------------------------------------------------------------------------

// hparams.get(key, default)
Json get_or(const Hparams& hp, std::string_view key, Json fallback) {
  auto it = hp.root().find(key);
  return it == hp.root().end() ? fallback : *it;
}

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

// ---- Gemma4Model ------------------------------------------------------------------------

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
  gemma3_parameters(c);
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

// ---- Qwen3Model / Qwen3MoeModel ---------------------------------------------------------

void qwen3_vocab(ArchKvContext& c) {  // Qwen2Model.set_vocab
  if (!set_vocab_sentencepiece(c)) set_vocab_gpt2(c);
}

void qwen3moe_parameters(ArchKvContext& c) {  // Qwen2MoeModel.set_gguf_parameters
  text_model_parameters(c);
  if (const Json* v = c.hp.get("moe_intermediate_size"))
    c.kv.set(c.key("expert_feed_forward_length"), u32_or_array_of(*v, "moe_intermediate_size"));
  if (const Json* v = c.hp.get("shared_expert_intermediate_size"))
    c.kv.set(c.key("expert_shared_feed_forward_length"), u32_of(*v, "shared_expert_intermediate_size"));
}

// Qwen2MoeModel inherits TextModel.set_vocab (GPT-2 BPE).
void qwen3moe_vocab(ArchKvContext& c) { set_vocab_gpt2(c); }

// Qwen3 (Qwen2Model.set_gguf_parameters) adds only pooling for embedding models, which temper
// does not convert.
constexpr ArchKv kArchKv[] = {
    {"llama", llama_parameters, llama_vocab},
    {"gemma3", gemma3_parameters, gemma3_vocab},
    {"gemma4", gemma4_parameters, set_vocab_gemma4},
    {"qwen3", text_model_parameters, qwen3_vocab},
    {"qwen3moe", qwen3moe_parameters, qwen3moe_vocab},
};

}  // namespace

const ArchKv& find_arch_kv(std::string_view id) {
  for (const ArchKv& a : kArchKv)
    if (a.id == id) return a;
  fail("GGUF export: no GGUF metadata table for architecture '", id, "'");
}

void text_model_parameters(ArchKvContext& c) {
  const Hparams& hp = c.hp;
  KvList& kv = c.kv;
  kv.set(c.key("block_count"), u32_of(*hp.find({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}), "num_hidden_layers"));
  auto opt = [&](std::initializer_list<std::string_view> keys, std::string_view suffix, GgufValue (*make)(const Json&, std::string_view)) {
    if (const Json* v = hp.find(keys); non_null(v)) kv.set(c.key(suffix), make(*v, *keys.begin()));
  };
  opt({"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"},
      "context_length", u32_of);
  opt({"hidden_size", "n_embd", "dim"}, "embedding_length", u32_of);
  opt({"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"},
      "feed_forward_length", u32_or_array_of);
  opt({"num_attention_heads", "n_head", "n_heads"}, "attention.head_count", u32_or_array_of);
  opt({"num_key_value_heads", "n_kv_heads"}, "attention.head_count_kv", u32_or_array_of);
  if (auto it = hp.root().find("is_causal"); it != hp.root().end() && *it == false)
    kv.set(c.key("attention.causal"), GgufValue::scalar<bool>(false));

  const Json* full = get_in(c.rope_parameters, "full_attention");
  const Json& rp = full ? *full : c.rope_parameters;
  if (const Json* type = get_in(rp, "rope_type"); type && type->is_string()) {
    const std::string t = type->get<std::string>();
    const Json* factor = get_in(rp, "factor");
    if (t == "linear" && factor) {
      kv.set(c.key("rope.scaling.type"), GgufValue::string("linear"));
      kv.set(c.key("rope.scaling.factor"), f32_of(*factor, "rope factor"));
    } else if (t == "yarn" && factor) {
      kv.set(c.key("rope.scaling.type"), GgufValue::string("yarn"));
      kv.set(c.key("rope.scaling.factor"), f32_of(*factor, "rope factor"));
      const Json* orig = get_in(rp, "original_max_position_embeddings");
      TEMPER_CHECK(orig, hp.source(), ": yarn RoPE needs original_max_position_embeddings");
      kv.set(c.key("rope.scaling.original_context_length"), u32_of(*orig, "original_max_position_embeddings"));
      const Json* attn = get_in(rp, "attention_factor");
      if (!attn) attn = get_in(rp, "attn_factor");
      const std::pair<const Json*, const char*> extras[] = {{get_in(rp, "extrapolation_factor"), "rope.scaling.yarn_ext_factor"},
                                                            {attn, "rope.scaling.yarn_attn_factor"},
                                                            {get_in(rp, "beta_fast"), "rope.scaling.yarn_beta_fast"},
                                                            {get_in(rp, "beta_slow"), "rope.scaling.yarn_beta_slow"}};
      for (auto [v, key] : extras)
        if (v) kv.set(c.key(key), f32_of(*v, key));
    } else if (t == "su" || t == "longrope") {
      kv.set(c.key("rope.scaling.type"), GgufValue::string("longrope"));
    }  // "dynamic", "llama3" (a rope_freqs tensor), "default", "proportional": no keys
  }
  if (const Json* ms = get_in(c.rope_parameters, "mrope_section"); ms && ms->is_array()) {
    std::vector<int32_t> s;
    for (const Json& e : *ms) s.push_back(i32_of(e, "mrope_section").as<int32_t>());
    s.resize(std::max<size_t>(s.size(), 4), 0);
    s.resize(4);
    kv.set(c.key("rope.dimension_sections"), GgufValue::array<int32_t>(s));
  }
  if (const Json* theta = get_in(rp, "rope_theta")) kv.set(c.key("rope.freq_base"), f32_of(*theta, "rope_theta"));
  if (const Json* swa = get_in(c.rope_parameters, "sliding_attention"))
    if (const Json* theta = get_in(*swa, "rope_theta")) kv.set(c.key("rope.freq_base_swa"), f32_of(*theta, "rope_theta"));
  opt({"rms_norm_eps", "norm_eps"}, "attention.layer_norm_rms_epsilon", f32_of);
  opt({"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"}, "attention.layer_norm_epsilon", f32_of);
  opt({"num_local_experts", "num_experts", "n_routed_experts"}, "expert_count", u32_of);
  opt({"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}, "expert_used_count", u32_or_array_of);
  if (const Json* g = hp.get("n_group")) kv.set(c.key("expert_group_count"), u32_of(*g, "n_group"));
  if (const Json* g = hp.get("topk_group")) kv.set(c.key("expert_group_used_count"), u32_of(*g, "topk_group"));
  if (const Json* f = hp.find({"score_function", "scoring_func", "score_func", "moe_router_activation",
                               "moe_router_activation_func", "expert_selection_fn"});
      non_null(f)) {
    const uint32_t id = *f == "sigmoid" ? 2 : *f == "softmax" ? 1 : *f == "sqrtsoftplus" ? 4 : 0;
    TEMPER_CHECK(id != 0, hp.source(), ": unsupported expert gating function ", f->dump());
    kv.set(c.key("expert_gating_func"), GgufValue::scalar<uint32_t>(id));
  }
  if (const Json* hd = hp.get("head_dim")) {
    kv.set(c.key("attention.key_length"), u32_of(*hd, "head_dim"));
    kv.set(c.key("attention.value_length"), u32_of(*hd, "head_dim"));
  }
  kv.set("general.file_type", GgufValue::scalar<uint32_t>(uint32_t(c.ftype)));
}

}  // namespace temper::gguf_meta
