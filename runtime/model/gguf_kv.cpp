// The generic parts of GGUF metadata writing (model/gguf_kv.h): the converter's KV list,
// config.json lookups, value packing, and TextModel.set_gguf_parameters
// (llama.cpp conversion/base.py), which every architecture's set_gguf_parameters starts from.
#include "model/gguf_kv.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"

namespace temper::gguf_meta {

const Json* get_in(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

Json get_or(const Hparams& hp, std::string_view key, Json fallback) {
  auto it = hp.root().find(key);
  return it == hp.root().end() ? fallback : *it;
}

void KvList::set(const std::string& key, GgufValue v) {
  if (auto it = index_.find(key); it != index_.end()) {
    items_[it->second].second = std::move(v);
    return;
  }
  index_.emplace(key, items_.size());
  items_.emplace_back(key, std::move(v));
}

void KvList::remove(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  items_.erase(items_.begin() + long(it->second));
  index_.clear();
  for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
}

GgufKvList KvList::take() {
  index_.clear();
  return std::move(items_);
}

bool truthy(const Json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number_float()) return v.get<double>() != 0.0;
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
}

GgufValue u32_of(const Json& v, std::string_view what) {
  TEMPER_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= int64_t(UINT32_MAX), "config key '",
               what, "': expected an unsigned 32-bit integer, got ", v.dump());
  return GgufValue::scalar<uint32_t>(uint32_t(v.get<int64_t>()));
}

GgufValue i32_of(const Json& v, std::string_view what) {
  TEMPER_CHECK(v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX, "key '", what,
               "': expected a 32-bit integer, got ", v.dump());
  return GgufValue::scalar<int32_t>(int32_t(v.get<int64_t>()));
}

GgufValue f32_of(const Json& v, std::string_view what) {
  TEMPER_CHECK(v.is_number(), "key '", what, "': expected a number, got ", v.dump());
  return GgufValue::scalar<float>(float(v.get<double>()));
}

GgufValue str_of(const Json& v, std::string_view what) {
  TEMPER_CHECK(v.is_string(), "key '", what, "': expected a string, got ", v.dump());
  return GgufValue::string(v.get<std::string>());
}

GgufValue u32_or_array_of(const Json& v, std::string_view what) {
  if (!v.is_array()) return u32_of(v, what);
  TEMPER_CHECK(!v.empty(), "config key '", what, "': empty list");
  std::vector<int32_t> out;
  for (const Json& e : v) out.push_back(i32_of(e, what).as<int32_t>());
  return GgufValue::array<int32_t>(out);
}

Hparams::Hparams(const std::string& config_json, std::string source) : source_(std::move(source)) {
  raw_ = parse_json(config_json, source_);
  TEMPER_CHECK(raw_.is_object(), source_, ": expected a JSON object at the top level");
  flat_ = raw_;
  if (auto tc = raw_.find("text_config"); tc != raw_.end() && tc->is_object())
    for (auto it = tc->begin(); it != tc->end(); ++it) flat_[it.key()] = *it;
}

const Json* Hparams::find(std::initializer_list<std::string_view> keys) const {
  for (std::string_view k : keys)
    if (auto it = flat_.find(k); it != flat_.end()) return &*it;
  return nullptr;
}

const Json* Hparams::get(std::string_view key) const {
  auto it = flat_.find(key);
  return it == flat_.end() || it->is_null() ? nullptr : &*it;
}

const Json& Hparams::at(std::string_view key) const {
  auto it = flat_.find(key);
  TEMPER_CHECK(it != flat_.end(), source_, ": missing key '", key, "'");
  return *it;
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
  kv.set("general.file_type", GgufValue::scalar<uint32_t>(c.file_type));
}

}  // namespace temper::gguf_meta
