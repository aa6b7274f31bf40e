// GGUF metadata -> ModelDescription with llama.cpp's loader semantics (llama-model.cpp
// load_hparams, the per-arch load_arch_hparams, llama-vocab.cpp load). Generic <arch>.* keys are
// read once; what differs by architecture lives in the kGgufArchs table below.
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

namespace temper {

namespace {

// Typed access to <arch>.* keys: scalars, or per-layer arrays (llama.cpp get_key_or_arr).
class Keys {
 public:
  Keys(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  std::string key(std::string_view suffix) const { return cat(arch_, ".", suffix); }
  bool has(std::string_view suffix) const { return f_.has(key(suffix)); }

  // Any integer/float scalar type, as llama.cpp's get_key accepts (it casts).
  double number(std::string_view suffix) const {
    const std::string k = key(suffix);
    const GgufValue& v = f_.get(k);
    TEMPER_CHECK(!v.is_array(), f_.path(), ": key '", k, "' is ", v.type_str(), ", expected a number");
    return element(v, 0, k);
  }
  double number(std::string_view suffix, double fallback) const { return has(suffix) ? number(suffix) : fallback; }
  int integer(std::string_view suffix) const { return int(number(suffix)); }
  int integer(std::string_view suffix, int fallback) const { return has(suffix) ? integer(suffix) : fallback; }

  // A value per layer: an array of n_layer entries, or one scalar for all (absent: fallback).
  std::vector<double> per_layer(std::string_view suffix, int n_layer, std::optional<double> fallback = {}) const {
    const std::string k = key(suffix);
    const GgufValue* v = f_.find_value(k);
    if (!v) {
      TEMPER_CHECK(fallback.has_value(), f_.path(), ": missing key '", k, "'");
      return std::vector<double>(size_t(n_layer), *fallback);
    }
    if (!v->is_array()) return std::vector<double>(size_t(n_layer), element(*v, 0, k));
    TEMPER_CHECK(v->count() == uint64_t(n_layer), f_.path(), ": key '", k, "' has ", v->count(),
                 " entries, expected one per layer (", n_layer, ")");
    std::vector<double> out;
    for (uint64_t i = 0; i < v->count(); ++i) out.push_back(element(*v, i, k));
    return out;
  }

 private:
  double element(const GgufValue& v, uint64_t i, const std::string& k) const {
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
  const GgufFile& f_;
  std::string arch_;
};

const TensorInfo* find_tensor(const GgufFile& f, std::string_view name) {
  for (const TensorInfo& t : f.tensors())
    if (t.name == name) return &t;
  return nullptr;
}

bool has_tensor(const GgufFile& f, int layer, std::string_view suffix) {
  return find_tensor(f, cat("blk.", layer, ".", suffix)) != nullptr;
}

std::vector<float> tensor_as_f32(const GgufFile& f, const TensorInfo& t) {
  TEMPER_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16, f.path(), ": tensor '",
               t.name, "' must be F32, F16 or BF16, got ", dtype_traits(t.dtype).name);
  std::vector<uint8_t> scratch;
  const auto bytes = f.read(t, scratch);
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

// What one architecture's loader and graph do beyond the generic keys.
struct GgufArch {
  std::string_view id;  // registry id
  RopeStyle rope_style;
  Activation act;
  bool post_norms, qk_norm, v_norm;
  bool embed_scale_sqrt_d;  // embeddings times sqrt(n_embd)
  // Per-architecture extras on the generic config: SWA layers, RoPE per layer, MoE, PLE, ...
  void (*finish)(const GgufFile& f, const Keys& k, ModelConfig& cfg);
};

// Gemma 3: layer il is SWA iff il % 6 < 5 (load_swa_pattern(6)) when sliding_window > 0; SWA
// layers use rope.freq_base_swa (llama-hparams.h default 10000) unscaled; attention is scaled by
// 1/sqrt(head_dim) (1/sqrt(n_embd/n_head) for the 62-layer 27B), query_pre_attn_scalar unused.
void finish_gemma3(const GgufFile&, const Keys& k, ModelConfig& cfg) {
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

// Gemma 4: per-layer SWA pattern with its own head dim, RoPE base and n_rot; proportional RoPE
// (rope_freqs) on full layers; KV sharing by the last shared_kv_layers layers; K=V full layers
// (no attn_v); MoE beside the dense MLP; per-layer embeddings; layer output scalars.
void finish_gemma4(const GgufFile& f, const Keys& k, ModelConfig& cfg) {
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
    const TensorInfo* ple = find_tensor(f, "per_layer_token_embd.weight");
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
      l.k_eq_v = !is_swa && !has_tensor(f, il, "attn_v.weight");
    }
    l.has_layer_scalar = has_tensor(f, il, "layer_output_scale.weight");
    if (l.ffn != FfnKind::kDense) l.ffn = FfnKind::kDenseAndMoe;
  }
}

// Qwen 3 MoE: the graph renormalises the top-k weights (norm_w = true).
void finish_qwen3moe(const GgufFile&, const Keys& k, ModelConfig& cfg) {
  cfg.moe_norm_topk = k.has("expert_weights_norm") ? k.number("expert_weights_norm") != 0 : true;
}

void finish_none(const GgufFile&, const Keys&, ModelConfig&) {}

constexpr GgufArch kGgufArchs[] = {
    {"llama", RopeStyle::kInterleaved, Activation::kSilu, false, false, false, false, finish_none},
    {"gemma3", RopeStyle::kHalf, Activation::kGeluTanh, true, true, false, true, finish_gemma3},
    {"gemma4", RopeStyle::kHalf, Activation::kGeluTanh, true, true, true, true, finish_gemma4},
    {"qwen3", RopeStyle::kHalf, Activation::kSilu, false, true, false, false, finish_none},
    {"qwen3moe", RopeStyle::kHalf, Activation::kSilu, false, true, false, false, finish_qwen3moe},
};

const GgufArch& find_gguf_arch(const GgufFile& f, const ArchSpec*& spec) {
  const std::string& name = f.get_string("general.architecture");
  for (const ArchSpec* a : all_archs())
    if (a->gguf_arch == name)
      for (const GgufArch& g : kGgufArchs)
        if (g.id == a->id) {
          spec = a;
          return g;
        }
  std::string known;
  for (const GgufArch& g : kGgufArchs) known += cat(known.empty() ? "" : ", ", g.id);
  fail(f.path(), ": general.architecture '", escaped(name), "' is not supported (", known, ")");
}

ModelConfig read_config(const GgufFile& f, const ArchSpec& spec, const GgufArch& ga) {
  const Keys k(f, std::string(spec.gguf_arch));
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
  const TensorInfo* embd = find_tensor(f, "token_embd.weight");
  TEMPER_CHECK(embd && embd->shape.size() == 2, f.path(), ": token_embd.weight is missing or not 2-D");
  cfg.n_vocab = int(embd->shape[0]);
  cfg.tied_embeddings = find_tensor(f, "output.weight") == nullptr;
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
  std::vector<float> freqs;
  if (const TensorInfo* t = find_tensor(f, "rope_freqs.weight")) freqs = tensor_as_f32(f, *t);
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
    l.rope_pos_scale = rope_factor == 0 ? 1.0f : float(1.0 / rope_factor);
    l.d_ff = int(d_ff[size_t(il)]);
    l.kv_source_layer = il;
    if (n_expert > 0 && has_tensor(f, il, "ffn_gate_inp.weight")) {
      l.ffn = l.d_ff > 0 && has_tensor(f, il, "ffn_gate.weight") ? FfnKind::kDenseAndMoe : FfnKind::kMoe;
      if (l.ffn == FfnKind::kMoe) l.d_ff = 0;
      l.n_expert = n_expert;
      l.n_expert_used = int(n_expert_used[size_t(il)]);
      l.d_ff_expert = d_ff_expert;
    }
    cfg.layers.push_back(std::move(l));
  }
  ga.finish(f, k, cfg);
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
  const GgufArch& ga = find_gguf_arch(f, d.arch);
  d.config = read_config(f, *d.arch, ga);
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
