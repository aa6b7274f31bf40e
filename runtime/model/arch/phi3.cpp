// Phi-3 / Phi-4-mini (Phi3ForCausalLM): the Llama decoder with q, k, v in one qkv_proj and
// gate, up in one gate_up_proj (TensorRole::kAttnQkv/kFfnGateUp), partial rotary
// (partial_rotary_factor: the first head_dim * factor dims rotate, NeoX pairs), and LongRoPE
// (rope_scaling "longrope"/"su": per-frequency short and long divisors plus an attention factor
// on cos and sin). Phi-4-mini ties its embeddings. llama.cpp: conversion/phi.py Phi3MiniModel
// writes general.architecture "phi3", attn_qkv and ffn_up (2 * n_ff rows) unchanged, and
// rope_factors_long/short; src/models/phi3.cpp reads them.
//
// LongRoPE's choice of factors differs: HF (modeling_rope_utils.py, the longrope dynamic update)
// takes the long ones when a forward's sequence (max position + 1) exceeds
// original_max_position_embeddings; llama.cpp (llama_model::get_rope_factors) when the context
// size does. temper follows llama.cpp: a session of n_ctx tokens uses the long factors iff
// n_ctx > original (rope_factors_for), which is HF's choice for one forward of n_ctx tokens.
#include <cmath>

#include "model/arch/common.h"
#include "model/gguf_kv.h"
#include "model/sentencepiece_model.h"
#include "model/tokenizer_assets.h"

namespace temper {

namespace {

using arch::shapes::Shape;

const std::vector<TensorSpec> kPhi3Tensors = {
    {.role = TensorRole::kTokenEmbd, .hf_name = "model.embed_tokens.weight", .gguf_name = "token_embd.weight",
     .quant_class = QuantClass::kEmbedding, .shape = arch::shapes::token_embd},
    {.role = TensorRole::kOutputNorm, .hf_name = "model.norm.weight", .gguf_name = "output_norm.weight",
     .quant_class = QuantClass::kKeepF32, .shape = arch::shapes::model_vec},
    {.role = TensorRole::kOutput, .hf_name = "lm_head.weight", .gguf_name = "output.weight", .flags = kOptional,
     .quant_class = QuantClass::kOutput, .shape = arch::shapes::output},
    {.role = TensorRole::kAttnNorm, .hf_name = "model.layers.{L}.input_layernorm.weight",
     .gguf_name = "blk.{L}.attn_norm.weight", .flags = kPerLayer, .quant_class = QuantClass::kKeepF32,
     .shape = arch::shapes::model_vec},
    // q rows, then k, then v (Phi3Attention splits qkv_proj's output in that order).
    {.role = TensorRole::kAttnQkv, .hf_name = "model.layers.{L}.self_attn.qkv_proj.weight",
     .gguf_name = "blk.{L}.attn_qkv.weight", .flags = kPerLayer, .quant_class = QuantClass::kAttnQkv,
     .shape = [](const ModelConfig& c, int l) -> Shape {
       const LayerConfig& L = c.layers.at(l);
       return {int64_t(L.n_head + 2 * L.n_head_kv) * L.head_dim, c.d_model};
     }},
    {.role = TensorRole::kAttnOut, .hf_name = "model.layers.{L}.self_attn.o_proj.weight",
     .gguf_name = "blk.{L}.attn_output.weight", .flags = kPerLayer, .quant_class = QuantClass::kAttnOut,
     .shape = arch::shapes::attn_out},
    {.role = TensorRole::kFfnNorm, .hf_name = "model.layers.{L}.post_attention_layernorm.weight",
     .gguf_name = "blk.{L}.ffn_norm.weight", .flags = kPerLayer, .quant_class = QuantClass::kKeepF32,
     .shape = arch::shapes::model_vec},
    // Gate rows, then up (Phi3MLP: gate, up = gate_up_proj(x).chunk(2); ggml's swiglu halves).
    {.role = TensorRole::kFfnGateUp, .hf_name = "model.layers.{L}.mlp.gate_up_proj.weight",
     .gguf_name = "blk.{L}.ffn_up.weight", .flags = kPerLayer, .quant_class = QuantClass::kFfnUp,
     .shape = [](const ModelConfig& c, int l) -> Shape { return {2 * int64_t(c.layers.at(l).d_ff), c.d_model}; }},
    {.role = TensorRole::kFfnDown, .hf_name = "model.layers.{L}.mlp.down_proj.weight",
     .gguf_name = "blk.{L}.ffn_down.weight", .flags = kPerLayer, .quant_class = QuantClass::kFfnDown,
     .shape = arch::shapes::ffn_down},
};

// LongRoPE's attention factor for a context extended `scale` times beyond `orig` tokens: HF
// _compute_longrope_parameters' default and what llama.cpp's converter writes.
double longrope_attn_factor(double scale, double orig) {
  return scale > 1 ? std::sqrt(1 + std::log(scale) / std::log(orig)) : 1.0;
}

std::vector<float> factor_list(const arch::ConfigView& s, std::string_view key, int n) {
  TEMPER_CHECK(s.json().contains(key) && s.json()[std::string(key)].is_array(), "config.json: key '", s.key_name(key),
               "' must be a list of numbers");
  std::vector<float> out;
  for (const Json& v : s.json()[std::string(key)]) {
    TEMPER_CHECK(v.is_number(), "config.json: key '", s.key_name(key), "' must hold numbers");
    out.push_back(v.get<float>());
  }
  TEMPER_CHECK(int(out.size()) == n, "config.json: key '", s.key_name(key), "' has ", out.size(),
               " entries, expected rotary dims / 2 = ", n);
  return out;
}

// HF _compute_longrope_parameters. Phi3Config always has original_max_position_embeddings, so
// the factor is max_position_embeddings / original and `factor` in rope_scaling is unused.
void apply_longrope(const arch::ConfigView& c, const arch::ConfigView& s, int n_ctx_train, LayerConfig& layer) {
  const int orig = s.has("original_max_position_embeddings") ? s.get_int("original_max_position_embeddings")
                                                            : c.get_int("original_max_position_embeddings", 4096);
  TEMPER_CHECK(orig > 0, "config.json: key 'original_max_position_embeddings' must be > 0, got ", orig);
  layer.rope_freq_factors = factor_list(s, "short_factor", layer.n_rot / 2);
  layer.rope_freq_factors_long = factor_list(s, "long_factor", layer.n_rot / 2);
  layer.rope_long_after = orig;
  layer.rope_attn_factor = float(s.has("attention_factor") ? s.get_number("attention_factor")
                                                            : longrope_attn_factor(double(n_ctx_train) / orig, orig));
}

ModelConfig parse_phi3(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // HF Phi3Config defaults: vocab 32064, max_position_embeddings 4096, rms_norm_eps 1e-5,
  // untied, rope_theta 1e4, partial_rotary_factor 1, no rope_scaling, no sliding window.
  arch::read_common_fields(c, "phi3",
                           {.hf_architecture = "Phi3ForCausalLM", .n_ctx = 4096, .norm_eps = 1e-5, .n_vocab = 32064},
                           cfg);
  arch::require_string(c, "hidden_act", "silu");
  cfg.act = Activation::kSilu;
  cfg.rope_style = RopeStyle::kHalf;

  LayerConfig layer;
  layer.n_head = c.get_int("num_attention_heads", 32);
  TEMPER_CHECK(layer.n_head > 0, "config.json: key 'num_attention_heads' must be > 0, got ", layer.n_head);
  layer.n_head_kv = c.get_int("num_key_value_heads", layer.n_head);
  layer.head_dim = c.get_int("head_dim", cfg.d_model / layer.n_head);
  layer.d_ff = c.get_int("intermediate_size", 8192);
  layer.window = c.get_int("sliding_window", 0);
  // transformers v5 keeps theta, type and factors in rope_parameters, v4 in rope_scaling.
  const auto rope_params = c.get_object("rope_parameters");
  const auto rope_obj = rope_params ? rope_params : c.get_object("rope_scaling");
  const double partial = rope_params && rope_params->has("partial_rotary_factor")
                             ? rope_params->get_number("partial_rotary_factor")
                             : c.get_number("partial_rotary_factor", 1.0);
  TEMPER_CHECK(partial > 0 && partial <= 1, "config.json: key 'partial_rotary_factor' must be in (0, 1], got ", partial);
  layer.n_rot = int(double(layer.head_dim) * partial);  // int(head_dim * partial_rotary_factor)
  layer.rope_theta = float(rope_params && rope_params->has("rope_theta") ? rope_params->get_number("rope_theta")
                                                                          : c.get_number("rope_theta", 10000.0));
  if (rope_obj) {
    const std::string type_key = rope_obj->has("rope_type") ? "rope_type" : "type";
    const std::string type = rope_obj->get_string(type_key, "default");
    if (type == "longrope" || type == "su") {
      apply_longrope(c, *rope_obj, cfg.n_ctx_train, layer);
    } else {
      TEMPER_CHECK(type == "default", "config.json: key '", rope_obj->key_name(type_key), "' is \"", type,
                   "\", which temper does not support for Phi-3 (supported: default, longrope)");
    }
  }
  arch::repeat_layer(cfg, layer);
  validate_config(cfg);
  return cfg;
}

// What llama.cpp (release in .llama-ref) reads differently: src/models/phi3.cpp takes q, k, v
// and the rotary dims from n_embd / n_head (attn_output is {n_embd, n_embd}); it disables
// Phi's sliding window (load_arch_hparams); the converter computes the attention factor itself
// and ignores rope_scaling.attention_factor.
std::vector<LlamaCppIssue> phi3_llama_cpp_issues(const ModelConfig& cfg, const GgufKvLookup&) {
  std::vector<LlamaCppIssue> issues;
  const LayerConfig& l = cfg.layers.at(0);
  if (l.n_head * l.head_dim != cfg.d_model)
    issues.push_back({"head_dim", cat("head_dim ", l.head_dim, " x ", l.n_head, " heads != hidden_size ", cfg.d_model,
                                      ": llama.cpp's Phi-3 graph assumes head_dim = hidden_size / heads "
                                      "(src/models/phi3.cpp, attn_output {n_embd, n_embd})")});
  if (l.window > 0 && l.window < cfg.n_ctx_train)
    issues.push_back({"sliding_window", cat("attention is limited to the last ", l.window,
                                            " tokens, but llama.cpp disables Phi's sliding window "
                                            "(src/models/phi3.cpp load_arch_hparams)")});
  if (!l.rope_freq_factors_long.empty() && l.rope_long_after > 0) {
    const float converter =
        float(longrope_attn_factor(double(cfg.n_ctx_train) / l.rope_long_after, l.rope_long_after));
    if (converter != l.rope_attn_factor)
      issues.push_back({"rope_scaling.attention_factor",
                        cat("attention factor ", l.rope_attn_factor, ", but llama.cpp's converter writes ", converter,
                            " from the context ratio (conversion/phi.py Phi3MiniModel.generate_extra_tensors)")});
  }
  return issues;
}

// ---- GGUF: llama.cpp conversion/phi.py Phi3MiniModel --------------------------------------

using namespace gguf_meta;

const Json& required(const Hparams& hp, std::initializer_list<std::string_view> keys) {
  const Json* v = hp.find(keys);
  TEMPER_CHECK(non_null(v), hp.source(), ": missing key '", *keys.begin(), "'");
  return *v;
}

int64_t int_of(const Json& v, std::string_view what) { return int64_t(u32_of(v, what).as<uint32_t>()); }

// int(partial_rotary_factor * n_embd) // n_head
int64_t rope_dims(const ArchKvContext& c) {
  const Json* pct = get_in(c.rope_parameters, "partial_rotary_factor");
  const double rot_pct = pct && pct->is_number() ? pct->get<double>() : 1.0;
  const int64_t n_embd = int_of(required(c.hp, {"hidden_size", "n_embd"}), "hidden_size");
  const int64_t n_head = int_of(required(c.hp, {"num_attention_heads", "n_head"}), "num_attention_heads");
  TEMPER_CHECK(n_head > 0, c.hp.source(), ": num_attention_heads must be > 0");
  return int64_t(rot_pct * double(n_embd)) / n_head;
}

void phi3_parameters(ArchKvContext& c) {
  const Hparams& hp = c.hp;
  const Json& max_pos = required(hp, {"n_positions", "max_position_embeddings"});
  const Json* orig = get_in(c.rope_parameters, "original_max_position_embeddings");
  TEMPER_CHECK(orig, hp.source(), ": Phi-3 needs original_max_position_embeddings");
  c.kv.set(c.key("context_length"), u32_of(max_pos, "max_position_embeddings"));
  c.kv.set(c.key("rope.scaling.original_context_length"), u32_of(*orig, "original_max_position_embeddings"));
  c.kv.set(c.key("embedding_length"), u32_of(required(hp, {"hidden_size", "n_embd"}), "hidden_size"));
  c.kv.set(c.key("feed_forward_length"), u32_or_array_of(required(hp, {"intermediate_size"}), "intermediate_size"));
  c.kv.set(c.key("block_count"), u32_of(required(hp, {"n_layers", "num_hidden_layers", "n_layer", "num_layers"}),
                                        "num_hidden_layers"));
  c.kv.set(c.key("attention.head_count"), u32_or_array_of(required(hp, {"num_attention_heads", "n_head"}), "num_attention_heads"));
  c.kv.set(c.key("attention.head_count_kv"),
           u32_or_array_of(required(hp, {"num_key_value_heads", "n_head_kv"}), "num_key_value_heads"));
  c.kv.set(c.key("attention.layer_norm_rms_epsilon"), f32_of(required(hp, {"rms_norm_eps"}), "rms_norm_eps"));
  c.kv.set(c.key("rope.dimension_count"), GgufValue::scalar<uint32_t>(uint32_t(rope_dims(c))));
  const Json* full = get_in(c.rope_parameters, "full_attention");
  const Json* theta = get_in(full ? *full : c.rope_parameters, "rope_theta");
  TEMPER_CHECK(theta, hp.source(), ": Phi-3 needs rope_theta");
  c.kv.set(c.key("rope.freq_base"), f32_of(*theta, "rope_theta"));
  c.kv.set("general.file_type", GgufValue::scalar<uint32_t>(c.file_type));
  // 0 tells Phi-4 apart from other Phi-3 models, the converter says.
  const Json* window = hp.get("sliding_window");
  c.kv.set(c.key("attention.sliding_window"), window ? u32_of(*window, "sliding_window") : GgufValue::scalar<uint32_t>(0));
}

// generate_extra_tensors' key (the factors themselves are rope_factors_long/short, from the
// config: quantize/gguf_plan.cpp).
void phi3_tensor_keys(ArchKvContext& c) {
  const Hparams& hp = c.hp;
  const Json* long_factors = get_in(c.rope_parameters, "long_factor");
  if (!long_factors || !truthy(*long_factors)) return;
  const Json& max_pos = required(hp, {"n_positions", "max_position_embeddings"});
  const Json* orig = get_in(c.rope_parameters, "original_max_position_embeddings");
  TEMPER_CHECK(orig, hp.source(), ": Phi-3 needs original_max_position_embeddings");
  const double n_orig = double(int_of(*orig, "original_max_position_embeddings"));
  const double scale = double(int_of(max_pos, "max_position_embeddings")) / n_orig;
  const Json* type = get_in(c.rope_parameters, "rope_type");
  TEMPER_CHECK(type && type->is_string() && !type->get<std::string>().empty(), hp.source(),
               ": Missing the required key rope_scaling.type");
  std::string t = type->get<std::string>();
  for (char& ch : t) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  double attn_factor = 1;
  if (t == "su" || t == "longrope") {
    attn_factor = longrope_attn_factor(scale, n_orig);
  } else if (t == "yarn") {
    if (scale > 1) attn_factor = 0.1 * std::log(scale) + 1.0;
  } else {
    fail(hp.source(), ": the rope scaling type ", t, " is not supported by llama.cpp's Phi-3 converter");
  }
  c.kv.set(c.key("rope.scaling.attn_factor"), GgufValue::scalar<float>(float(attn_factor)));
}

// Phi3MiniModel.set_vocab: a GPT2Tokenizer (Phi-4) is written as GPT-2 BPE; otherwise the
// SentencePiece pieces fill a vocab_size table of "[PAD<i>]" placeholders (score -10000,
// UNUSED), and added tokens (tokenizer_config.json's added_tokens_decoder, then tokenizer.json's
// added_tokens) overwrite their ids with score -1000, USER_DEFINED, or CONTROL when special.
// (The converter also reads added_tokens.json first, which temper does not keep; whatever it
// names is normally in the two lists that overwrite it.)
void phi3_vocab(ArchKvContext& c) {
  const TokenizerAssets& t = c.desc.tokenizer;
  const Json tc = t.tokenizer_config_json.empty() ? Json() : parse_json(t.tokenizer_config_json, "tokenizer_config.json");
  if (!tc.is_null()) {
    const Json* cls = get_in(tc, "tokenizer_class");
    TEMPER_CHECK(cls, "tokenizer_config.json: missing key 'tokenizer_class' (llama.cpp's Phi-3 converter needs it)");
    if (*cls == "GPT2Tokenizer") return set_vocab_gpt2(c);
  }
  TEMPER_CHECK(!t.tokenizer_model.empty(), "Phi-3 with a SentencePiece tokenizer needs tokenizer.model");
  const SentencePieceModel sp = parse_sentencepiece_model(t.tokenizer_model, "tokenizer.model");
  const Json* vs = c.hp.get("vocab_size");
  const int64_t n = vs ? int_of(*vs, "vocab_size") : int64_t(sp.pieces.size());
  TEMPER_CHECK(int64_t(sp.pieces.size()) <= n, "tokenizer.model has ", sp.pieces.size(), " pieces, more than vocab_size ", n);
  constexpr int32_t kNormal = int32_t(TokenType::kNormal), kUnknown = int32_t(TokenType::kUnknown),
                    kControl = int32_t(TokenType::kControl), kUserDefined = int32_t(TokenType::kUserDefined),
                    kUnused = int32_t(TokenType::kUnused), kByte = int32_t(TokenType::kByte);
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<float> scores(size_t(n), -10000.0f);
  std::vector<int32_t> types(size_t(n), kUnused);
  for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = cat("[PAD", i, "]");
  for (size_t i = 0; i < sp.pieces.size(); ++i) {
    const auto& p = sp.pieces[i];
    tokens[i] = p.piece;
    scores[i] = p.score;
    // IsUnknown, IsControl, IsUnused, IsByte; anything else (user-defined pieces too) is NORMAL.
    types[i] = p.type == kUnknown || p.type == kControl || p.type == kUnused || p.type == kByte ? p.type : kNormal;
  }
  auto added = [&](const Json& id_json, const Json& data, const char* file) {
    const Json* content = get_in(data, "content");
    TEMPER_CHECK(id_json.is_number_integer() && content && content->is_string(), file, ": malformed added token");
    const int64_t id = id_json.get<int64_t>();
    TEMPER_CHECK(id >= 0 && id < n, file, ": added token id ", id, " is outside vocab_size ", n);
    tokens[size_t(id)] = content->get<std::string>();
    scores[size_t(id)] = -1000.0f;
    const Json* special = get_in(data, "special");
    types[size_t(id)] = special && truthy(*special) ? kControl : kUserDefined;
  };
  if (!tc.is_null()) {
    if (const Json* dec = get_in(tc, "added_tokens_decoder"); dec && dec->is_object())
      for (const auto& [key, data] : dec->items()) {
        char* end = nullptr;
        const long long id = std::strtoll(key.c_str(), &end, 10);
        TEMPER_CHECK(!key.empty() && *end == '\0', "tokenizer_config.json: added token id '", key, "' is not a number");
        added(Json(id), data, "tokenizer_config.json");
      }
  }
  if (!t.tokenizer_json.empty()) {
    const Json tok = parse_json(t.tokenizer_json, "tokenizer.json");
    if (const Json* list = get_in(tok, "added_tokens"); list && list->is_array())
      for (const Json& data : *list) added(data.contains("id") ? data["id"] : Json(), data, "tokenizer.json");
  }
  c.kv.set("tokenizer.ggml.model", GgufValue::string("llama"));
  c.kv.set("tokenizer.ggml.pre", GgufValue::string("default"));
  add_token_list(c, tokens, &scores, types);
  add_special_vocab(c, false, tokens.size());
}

}  // namespace

extern const ArchSpec kPhi3Arch;
const ArchSpec kPhi3Arch{
    .id = "phi3",
    .hf_architectures = {"Phi3ForCausalLM"},
    .gguf_arch = "phi3",
    .parse_hf_config = parse_phi3,
    .tensors = kPhi3Tensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
    .llama_cpp_issues = phi3_llama_cpp_issues,
    .gguf_write = {.parameters = phi3_parameters, .vocab = phi3_vocab, .tensor_keys = phi3_tensor_keys},
    // NeoX RoPE over the first rope.dimension_count dims, no permutation; the LongRoPE factors,
    // original context and attention factor are generic (runtime/model/gguf_model.cpp).
    .gguf_read = GgufReadRules{.rope_style = RopeStyle::kHalf, .act = Activation::kSilu},
};

}  // namespace temper
