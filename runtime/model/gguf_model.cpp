// GGUF metadata -> ModelDescription with llama.cpp's loader semantics (llama-model.cpp
// load_hparams, the per-arch load_arch_hparams, llama-vocab.cpp load). Generic <arch>.* keys are
// read once here; what differs by architecture is the arch file's ArchSpec::gguf_read.
#include "model/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "core/escape.h"
#include "core/half.h"
#include "model/gguf_keys.h"

namespace temper {

double GgufKeys::number(std::string_view suffix) const {
  const std::string k = key(suffix);
  const GgufValue& v = f_.get(k);
  TEMPER_CHECK(!v.is_array(), f_.path(), ": key '", k, "' is ", v.type_str(), ", expected a number");
  return element(v, 0, k);
}

std::vector<double> GgufKeys::per_layer(std::string_view suffix, int n_layer, std::optional<double> fallback) const {
  const std::string k = key(suffix);
  const GgufValue* v = f_.find_value(k);
  if (!v) {
    TEMPER_CHECK(fallback.has_value(), f_.path(), ": missing key '", k, "'");
    return std::vector<double>(size_t(n_layer), *fallback);
  }
  if (!v->is_array()) return std::vector<double>(size_t(n_layer), element(*v, 0, k));
  TEMPER_CHECK(v->count() == uint64_t(n_layer), f_.path(), ": key '", k, "' has ", v->count(),
               " entries, expected one per layer (", n_layer, ")");
  return array(suffix);
}

std::vector<double> GgufKeys::array(std::string_view suffix) const {
  const std::string k = key(suffix);
  const GgufValue* v = f_.find_value(k);
  std::vector<double> out;
  if (!v) return out;
  for (uint64_t i = 0; i < v->count(); ++i) out.push_back(element(*v, i, k));
  return out;
}

double GgufKeys::element(const GgufValue& v, uint64_t i, const std::string& k) const {
  const auto b = v.bytes();
  auto at = [&](auto zero) {
    decltype(zero) x;
    std::memcpy(&x, b.data() + i * sizeof x, sizeof x);
    return double(x);
  };
  switch (v.elem_type()) {
    case GgufType::kU8: return at(uint8_t{});
    case GgufType::kI8: return at(int8_t{});
    case GgufType::kU16: return at(uint16_t{});
    case GgufType::kI16: return at(int16_t{});
    case GgufType::kU32: return at(uint32_t{});
    case GgufType::kI32: return at(int32_t{});
    case GgufType::kF32: return at(float{});
    case GgufType::kBool: return at(uint8_t{});
    case GgufType::kU64: return at(uint64_t{});
    case GgufType::kI64: return at(int64_t{});
    case GgufType::kF64: return at(double{});
    default: fail(f_.path(), ": key '", k, "' is ", v.type_str(), ", expected a number");
  }
}

const TensorInfo* GgufKeys::tensor(std::string_view name) const {
  for (const TensorInfo& t : f_.tensors())
    if (t.name == name) return &t;
  return nullptr;
}

bool GgufKeys::has_layer_tensor(int layer, std::string_view suffix) const {
  return tensor(cat("blk.", layer, ".", suffix)) != nullptr;
}

std::vector<float> GgufKeys::tensor_f32(const TensorInfo& t) const {
  TEMPER_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16, f_.path(), ": tensor '",
               t.name, "' must be F32, F16 or BF16, got ", dtype_traits(t.dtype).name);
  std::vector<uint8_t> scratch;
  const auto bytes = f_.read(t, scratch);
  std::vector<float> out(t.numel());
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::kF32) {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = t.dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return out;
}

namespace {

const ArchSpec& find_gguf_arch(const GgufFile& f) {
  const std::string& name = f.get_string("general.architecture");
  if (const ArchSpec* a = find_arch_by_gguf_name(name)) return *a;
  std::string known;
  for (const ArchSpec* a : all_archs())
    if (a->gguf_read) known += cat(known.empty() ? "" : ", ", a->gguf_arch);
  fail(f.path(), ": general.architecture '", escaped(name), "' is not supported (", known, ")");
}

ModelConfig read_config(const GgufFile& f, const ArchSpec& spec) {
  const GgufReadRules& ga = *spec.gguf_read;
  const GgufKeys k(f, std::string(spec.gguf_arch));
  ModelConfig cfg;
  cfg.arch = std::string(spec.id);
  cfg.d_model = k.integer("embedding_length");
  cfg.n_layer = k.integer("block_count");
  cfg.n_ctx_train = k.integer("context_length", 0);
  cfg.norm_eps = float(k.number("attention.layer_norm_rms_epsilon"));
  cfg.norm_weight_offset = 0;  // Gemma's 1 + w is stored in the GGUF
  cfg.post_norms = ga.post_norms;
  cfg.qk_norm = ga.qk_norm;
  cfg.v_norm = ga.v_norm;
  cfg.act = ga.act;
  cfg.rope_style = ga.rope_style;
  cfg.embed_scale = ga.embed_scale_sqrt_d ? std::sqrt(float(cfg.d_model)) : 0.0f;
  cfg.attn_scale = float(k.number("attention.scale", 0.0));
  cfg.final_softcap = float(k.number("final_logit_softcapping", 0.0));
  const TensorInfo* embd = k.tensor("token_embd.weight");
  TEMPER_CHECK(embd && embd->shape.size() == 2, f.path(), ": token_embd.weight is missing or not 2-D");
  cfg.n_vocab = int(embd->shape[0]);
  cfg.tied_embeddings = k.tensor("output.weight") == nullptr;
  TEMPER_CHECK(cfg.d_model > 0 && cfg.n_layer > 0, f.path(), ": embedding_length and block_count must be positive");
  // Every block has tensors of its own, so a larger block_count is corrupt (and would make the
  // per-layer loops below run for billions of layers).
  TEMPER_CHECK(uint64_t(cfg.n_layer) <= f.tensors().size(), f.path(), ": block_count ", cfg.n_layer,
               " exceeds the file's ", f.tensors().size(), " tensors");

  const int n = cfg.n_layer;
  const auto n_head = k.per_layer("attention.head_count", n);
  const auto n_head_kv = k.has("attention.head_count_kv") ? k.per_layer("attention.head_count_kv", n) : n_head;
  const auto d_ff = k.per_layer("feed_forward_length", n, 0.0);
  const int n_expert = k.integer("expert_count", 0);
  const auto n_expert_used = k.per_layer("expert_used_count", n, 0.0);
  const int d_ff_expert = k.integer("expert_feed_forward_length", 0);
  // RoPE scaling: llama.cpp scales positions by 1/rope.scaling.factor ("linear"); YaRN and
  // LongRoPE change the rotation itself, which the forward pass does not implement.
  if (k.has("rope.scaling.type")) {
    const std::string& type = f.get_string(k.key("rope.scaling.type"));
    TEMPER_CHECK(type == "linear" || type == "none", f.path(), ": ", k.key("rope.scaling.type"), " '", escaped(type),
                 "' is not supported (linear, none are)");
  }
  const double rope_factor = k.number("rope.scaling.factor", 0.0);
  // llama_model::get_rope_factors: rope_freqs when the file has it, else LongRoPE's
  // rope_factors_long past the original context (rope.scaling.original_context_length, default
  // context_length) and rope_factors_short up to it. llama.cpp scales cos and sin by
  // rope.scaling.attn_factor for every architecture.
  std::vector<float> freqs, long_freqs;
  if (const TensorInfo* t = k.tensor("rope_freqs.weight")) {
    freqs = k.tensor_f32(*t);
  } else {
    if (const TensorInfo* t = k.tensor("rope_factors_long.weight")) long_freqs = k.tensor_f32(*t);
    if (const TensorInfo* t = k.tensor("rope_factors_short.weight")) freqs = k.tensor_f32(*t);
  }
  const int n_ctx_orig = k.integer("rope.scaling.original_context_length", cfg.n_ctx_train);
  const float attn_factor = float(k.number("rope.scaling.attn_factor", 1.0));
  for (int il = 0; il < n; ++il) {
    LayerConfig l;
    l.n_head = int(n_head[size_t(il)]);
    l.n_head_kv = int(n_head_kv[size_t(il)]);
    TEMPER_CHECK(l.n_head > 0, f.path(), ": layer ", il, " has no attention heads");
    l.head_dim = k.integer("attention.key_length", cfg.d_model / l.n_head);
    TEMPER_CHECK(k.integer("attention.value_length", l.head_dim) == l.head_dim, f.path(),
                 ": key_length and value_length differ, which temper does not support");
    l.n_rot = k.integer("rope.dimension_count", l.head_dim);
    l.rope_theta = float(k.number("rope.freq_base", 10000.0));
    l.rope_freq_factors = freqs;
    l.rope_freq_factors_long = long_freqs;
    if (!long_freqs.empty()) l.rope_long_after = n_ctx_orig;
    l.rope_attn_factor = attn_factor;
    l.rope_pos_scale = rope_factor == 0 ? 1.0f : float(1.0 / rope_factor);
    l.d_ff = int(d_ff[size_t(il)]);
    l.kv_source_layer = il;
    if (n_expert > 0 && k.has_layer_tensor(il, "ffn_gate_inp.weight")) {
      l.ffn = l.d_ff > 0 && k.has_layer_tensor(il, "ffn_gate.weight") ? FfnKind::kDenseAndMoe : FfnKind::kMoe;
      if (l.ffn == FfnKind::kMoe) l.d_ff = 0;
      l.n_expert = n_expert;
      l.n_expert_used = int(n_expert_used[size_t(il)]);
      l.d_ff_expert = d_ff_expert;
    }
    cfg.layers.push_back(std::move(l));
  }
  if (ga.finish) ga.finish(f, k, cfg);
  return cfg;
}

std::optional<int32_t> optional_id(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find_value(key);
  if (!v) return std::nullopt;
  if (v->elem_type() == GgufType::kI32 && !v->is_array()) return v->as<int32_t>();
  return int32_t(f.get_u32(key));
}

std::optional<bool> optional_bool(const GgufFile& f, std::string_view key) {
  if (!f.has(key)) return std::nullopt;
  return f.get_bool(key);
}

// Tokens llama.cpp's vocabulary loader (llama-vocab.cpp, load) recognises by their text: the
// first of each special role it looks for (EOT, EOM, FIM) and every end-of-generation token.
const char* const kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                 "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<\uff5cend\u2581of\u2581sentence\uff5c>",
                                 "<end_of_utterance>"};
const char* const kFimTexts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>", "\u2581<PRE>",
    "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\uff5cfim\u2581hole\uff5c>",
    "<SUF>", "\u2581<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>",
    "<\uff5cfim\u2581end\uff5c>", "<MID>", "\u2581<MID>", "<|code_middle|>", "<|middle|>"};
// FIM pad/repo/file-separator tokens also end generation.
const char* const kFimEogTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>",
                                    "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"};
const char* const kEogTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                 "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                 "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                 "<turn|>", "<|tool_response>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "[e~["};
const char* const kAlwaysRendered[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

// What llama.cpp's loader does to the vocabulary after reading it: tokens of the lists above
// become CONTROL (so special-token parsing splits them out, e.g. "</s>" or "<eos>" stored as
// NORMAL), a few gpt-oss tokens become USER_DEFINED, and the end-of-generation set is built
// with its gpt-oss and gemma4 exceptions. token_types therefore hold the loader's view.
void apply_loader_token_rules(TokenizerAssets& t) {
  std::map<std::string, int32_t, std::less<>> id_of;
  for (size_t i = 0; i < t.tokens.size(); ++i) id_of.emplace(t.tokens[i], int32_t(i));
  auto lookup = [&](std::string_view text) {
    auto it = id_of.find(text);
    return it == id_of.end() ? -1 : it->second;
  };
  auto set_type = [&](int32_t id, TokenType type) { t.token_types[size_t(id)] = int32_t(type); };
  auto make_control = [&](std::string_view text) {
    const int32_t id = lookup(text);
    if (id >= 0) set_type(id, TokenType::kControl);
    return id;
  };
  for (const char* text : kEotTexts)
    if (int32_t id = make_control(text); id >= 0 && t.eot_id < 0) t.eot_id = id;
  if (int32_t id = make_control("<|eom_id|>"); id >= 0 && t.eom_id < 0) t.eom_id = id;
  for (const char* text : kFimTexts) make_control(text);
  std::set<int32_t> eog;
  for (const char* text : kFimEogTexts)
    if (int32_t id = make_control(text); id >= 0) eog.insert(id);
  for (const char* text : kEogTexts)
    if (int32_t id = make_control(text); id >= 0) eog.insert(id);
  for (const char* text : kAlwaysRendered)
    if (int32_t id = lookup(text); id >= 0) set_type(id, TokenType::kUserDefined);
  for (int32_t id : {t.eos_id, t.eot_id, t.eom_id})
    if (id >= 0 && size_t(id) < t.tokens.size()) eog.insert(id);
  auto in_eog = [&](std::string_view text) {
    const int32_t id = lookup(text);
    return id >= 0 && eog.count(id) ? id : -1;
  };
  // gpt-oss: <|end|> is not an end of generation next to <|return|>/<|call|> (or <|calls|>/<|flush|>).
  const bool has_call = in_eog("<|call|>") >= 0 || in_eog("<|calls|>") >= 0;
  if (const int32_t end = in_eog("<|end|>");
      end >= 0 && has_call && (in_eog("<|return|>") >= 0 || in_eog("<|flush|>") >= 0)) {
    eog.erase(end);
    set_type(end, TokenType::kUserDefined);
  }
  // gemma4 / paddleocr: </s> is an ordinary token when <|tool_response> ends generation.
  if (const int32_t s = in_eog("</s>"); s >= 0 && in_eog("<|tool_response>") >= 0) {
    eog.erase(s);
    set_type(s, TokenType::kNormal);
  }
  t.eog_ids.assign(eog.begin(), eog.end());
}

}  // namespace

TokenizerAssets load_gguf_tokenizer_assets(const GgufFile& f) {
  TokenizerAssets t;
  t.gguf_model = f.get_string("tokenizer.ggml.model");
  if (f.has("tokenizer.ggml.pre")) t.gguf_pre = f.get_string("tokenizer.ggml.pre");
  const bool spm = t.gguf_model == "llama";
  t.kind = spm ? "sentencepiece" : "bpe";
  t.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = t.tokens.size();
  t.scores = f.has("tokenizer.ggml.scores") ? f.get_f32_array("tokenizer.ggml.scores") : std::vector<float>(n, 0.0f);
  t.token_types = f.has("tokenizer.ggml.token_type") ? f.get_i32_array("tokenizer.ggml.token_type")
                                                     : std::vector<int32_t>(n, int32_t(TokenType::kNormal));
  TEMPER_CHECK(t.scores.size() == n && t.token_types.size() == n, f.path(), ": tokenizer.ggml.scores/token_type have ",
               t.scores.size(), "/", t.token_types.size(), " entries for ", n, " tokens");
  if (f.has("tokenizer.ggml.merges")) t.merges = f.get_string_array("tokenizer.ggml.merges");

  // llama-vocab.cpp defaults before the GGUF keys override them.
  const bool llama3_pre = t.gguf_pre == "llama3" || t.gguf_pre == "llama-v3" || t.gguf_pre == "llama-bpe" ||
                          t.gguf_pre == "falcon3" || t.gguf_pre == "pixtral";
  if (spm) {
    t.bos_id = 1, t.eos_id = 2, t.unk_id = 0;
  } else if (t.gguf_model == "gpt2") {
    t.bos_id = 11, t.eos_id = 11;
  }
  t.add_bos = spm || t.gguf_model == "gemma4" || llama3_pre;
  t.add_space_prefix = spm;
  auto id = [&](const char* key, int32_t& out) {
    if (auto v = optional_id(f, key)) out = *v;
  };
  id("tokenizer.ggml.bos_token_id", t.bos_id);
  id("tokenizer.ggml.eos_token_id", t.eos_id);
  id("tokenizer.ggml.unknown_token_id", t.unk_id);
  id("tokenizer.ggml.padding_token_id", t.pad_id);
  id("tokenizer.ggml.eot_token_id", t.eot_id);
  id("tokenizer.ggml.eom_token_id", t.eom_id);
  if (auto v = optional_bool(f, "tokenizer.ggml.add_bos_token")) t.add_bos = *v;
  if (auto v = optional_bool(f, "tokenizer.ggml.add_eos_token")) t.add_eos = *v;
  if (auto v = optional_bool(f, "tokenizer.ggml.add_space_prefix")) t.add_space_prefix = *v;

  apply_loader_token_rules(t);
  return t;
}

ModelDescription load_gguf_description(const GgufFile& f) {
  ModelDescription d;
  d.arch = &find_gguf_arch(f);
  d.config = read_config(f, *d.arch);
  if (f.has("tokenizer.ggml.model")) {
    d.tokenizer = load_gguf_tokenizer_assets(f);
    d.config.bos_token_id = d.tokenizer.bos_id;
    d.config.eos_token_id = d.tokenizer.eos_id;
    d.config.pad_token_id = d.tokenizer.pad_id;
  }
  if (f.has("tokenizer.chat_template")) d.chat_template = f.get_string("tokenizer.chat_template");
  d.provenance.source = f.path();
  d.provenance.files = {f.path()};
  validate_config(d.config);
  return d;
}

}  // namespace temper
