// Shared config.json readers, RoPE-scaling and checkpoint-name helpers for the architecture
// files (see common.h).
#include "model/arch/common.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "core/error.h"

namespace temper::arch {

namespace {

std::string describe(const Json& v) {
  if (v.is_number_float()) return cat("number ", v.dump());
  if (v.is_number()) return cat("integer ", v.dump());
  return v.type_name();
}

bool is_integral(const Json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d);
}

int to_int(const Json& v, const std::string& key) {
  const double d = v.get<double>();
  TEMPER_CHECK(d >= std::numeric_limits<int>::min() && d <= std::numeric_limits<int>::max(),
               "config.json: key '", key, "' is out of range: ", v.dump());
  return static_cast<int>(d);
}

}  // namespace

ConfigView::ConfigView(const Json& obj, std::string prefix)
    : obj_(&obj), prefix_(std::move(prefix)) {
  TEMPER_CHECK(obj.is_object(), "config.json: ",
               prefix_.empty() ? std::string("the root")
                               : cat("key '", prefix_.substr(0, prefix_.size() - 1), "'"),
               " must be an object, got ", obj.type_name());
}

bool ConfigView::has(std::string_view key) const {
  auto it = obj_->find(std::string(key));
  return it != obj_->end() && !it->is_null();
}

const Json& ConfigView::at(std::string_view key) const {
  TEMPER_CHECK(has(key), "config.json: missing required key '", key_name(key), "'");
  return obj_->at(std::string(key));
}

void ConfigView::type_error(std::string_view key, std::string_view expected,
                            const Json& got) const {
  fail("config.json: key '", key_name(key), "' must be ", expected, ", got ", describe(got));
}

int ConfigView::get_int(std::string_view key) const {
  const Json& v = at(key);
  if (!is_integral(v)) type_error(key, "an integer", v);
  return to_int(v, key_name(key));
}

int ConfigView::get_int(std::string_view key, int fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double ConfigView::get_number(std::string_view key) const {
  const Json& v = at(key);
  if (!v.is_number()) type_error(key, "a number", v);
  return v.get<double>();
}

double ConfigView::get_number(std::string_view key, double fallback) const {
  return has(key) ? get_number(key) : fallback;
}

bool ConfigView::get_bool(std::string_view key, bool fallback) const {
  if (!has(key)) return fallback;
  const Json& v = at(key);
  if (!v.is_boolean()) type_error(key, "a boolean", v);
  return v.get<bool>();
}

std::string ConfigView::get_string(std::string_view key) const {
  const Json& v = at(key);
  if (!v.is_string()) type_error(key, "a string", v);
  return v.get<std::string>();
}

std::string ConfigView::get_string(std::string_view key, std::string_view fallback) const {
  return has(key) ? get_string(key) : std::string(fallback);
}

std::optional<ConfigView> ConfigView::get_object(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  const Json& v = at(key);
  if (!v.is_object()) type_error(key, "an object", v);
  return ConfigView(v, key_name(key) + ".");
}

std::vector<std::string> ConfigView::get_string_list(std::string_view key) const {
  std::vector<std::string> out;
  if (!has(key)) return out;
  const Json& v = at(key);
  if (!v.is_array()) type_error(key, "a list of strings", v);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) type_error(cat(key, "[", i, "]"), "a string", v[i]);
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::vector<int> ConfigView::get_int_list(std::string_view key) const {
  std::vector<int> out;
  if (!has(key)) return out;
  const Json& v = at(key);
  if (!v.is_array()) type_error(key, "a list of integers", v);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!is_integral(v[i])) type_error(cat(key, "[", i, "]"), "an integer", v[i]);
    out.push_back(to_int(v[i], cat(key_name(key), "[", i, "]")));
  }
  return out;
}

int ConfigView::get_token_id(std::string_view key) const {
  if (!has(key)) return -1;
  const Json& v = at(key);
  if (v.is_array()) {
    const std::vector<int> ids = get_int_list(key);
    return ids.empty() ? -1 : ids[0];
  }
  if (!is_integral(v)) type_error(key, "an integer or a list of integers", v);
  return to_int(v, key_name(key));
}

Json merge_text_config(const Json& root) {
  TEMPER_CHECK(root.is_object(), "config.json: the root must be an object, got ",
               root.type_name());
  auto it = root.find("text_config");
  if (it == root.end() || it->is_null()) return root;
  TEMPER_CHECK(it->is_object(), "config.json: key 'text_config' must be an object, got ",
               it->type_name());
  Json merged = root;
  for (const auto& [k, v] : it->items()) merged[k] = v;
  return merged;
}

std::vector<bool> sliding_layers(const ConfigView& c, int n_layer, int pattern,
                                 bool last_full) {
  std::vector<bool> sliding(n_layer);
  const std::vector<std::string> types = c.get_string_list("layer_types");
  if (!types.empty()) {
    TEMPER_CHECK(static_cast<int>(types.size()) == n_layer, "config.json: key 'layer_types' has ",
                 types.size(), " entries, expected num_hidden_layers = ", n_layer);
    for (int i = 0; i < n_layer; ++i) {
      TEMPER_CHECK(types[i] == "sliding_attention" || types[i] == "full_attention",
                   "config.json: key 'layer_types[", i, "]' must be \"sliding_attention\" or "
                   "\"full_attention\", got \"", types[i], "\"");
      sliding[i] = types[i] == "sliding_attention";
    }
    return sliding;
  }
  TEMPER_CHECK(pattern > 0, "config.json: sliding window pattern must be positive, got ", pattern);
  for (int i = 0; i < n_layer; ++i) sliding[i] = (i + 1) % pattern != 0;
  if (last_full && n_layer > 0) sliding[n_layer - 1] = false;
  return sliding;
}

std::vector<float> llama3_freq_factors(double theta, int n_rot, double factor,
                                       double low_freq_factor, double high_freq_factor,
                                       double original_max_positions) {
  // HF _compute_llama3_parameters, written as divisors of the unscaled frequency — the form
  // llama.cpp's converter stores in rope_freqs.weight. Computed in float, step by step as the
  // converter's torch.float32 code does (LlamaModel.generate_extra_tensors), so the GGUF
  // tensor is bit-identical to llama.cpp's; HF's own f32 formula agrees to within an ulp.
  const float low_wavelen = float(original_max_positions / low_freq_factor);
  const float high_wavelen = float(original_max_positions / high_freq_factor);
  const float two_pi = float(2 * std::numbers::pi);
  std::vector<float> factors(n_rot / 2);
  for (int j = 0; j < n_rot / 2; ++j) {
    const float inv_freq = 1.0f / std::pow(float(theta), float(2 * j) / float(n_rot));
    const float wavelen = two_pi / inv_freq;
    float divisor = 1;
    if (wavelen > low_wavelen) {
      divisor = float(factor);
    } else if (!(wavelen < high_wavelen)) {
      const float smooth = (float(original_max_positions) / wavelen - float(low_freq_factor)) /
                           float(high_freq_factor - low_freq_factor);
      divisor = 1.0f / ((1.0f - smooth) / float(factor) + smooth);
    }
    factors[j] = divisor;
  }
  return factors;
}

void apply_rope_scaling(const ConfigView& s, LayerConfig& layer) {
  // transformers < 4.45 wrote "type", later versions "rope_type".
  const std::string type_key = s.has("rope_type") ? "rope_type" : "type";
  const std::string type = s.get_string(type_key, "default");
  if (type == "default") return;
  if (type == "linear") {
    const double factor = s.get_number("factor");
    TEMPER_CHECK(factor > 0, "config.json: key '", s.key_name("factor"), "' must be > 0, got ",
                 factor);
    layer.rope_pos_scale = static_cast<float>(1 / factor);
    return;
  }
  if (type == "llama3") {
    const double factor = s.get_number("factor");
    const double low = s.get_number("low_freq_factor");
    const double high = s.get_number("high_freq_factor");
    const double orig = s.get_number("original_max_position_embeddings");
    TEMPER_CHECK(factor > 0 && low > 0 && high > low && orig > 0, "config.json: key '",
                 s.key_name(""), "' has invalid llama3 parameters (need factor > 0, "
                 "0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0)");
    layer.rope_freq_factors = llama3_freq_factors(layer.rope_theta, layer.n_rot, factor, low,
                                                  high, orig);
    return;
  }
  fail("config.json: key '", s.key_name(type_key), "' is \"", type,
       "\", which temper does not support (supported: default, linear, llama3)");
}

void read_common_fields(const ConfigView& c, std::string_view arch_id, const CommonDefaults& d,
                        ModelConfig& cfg) {
  cfg.arch = std::string(arch_id);
  const std::vector<std::string> archs = c.get_string_list("architectures");
  cfg.hf_architecture = archs.empty() ? std::string(d.hf_architecture) : archs[0];
  cfg.d_model = c.get_int("hidden_size");
  cfg.n_layer = c.get_int("num_hidden_layers");
  cfg.n_vocab = d.n_vocab > 0 ? c.get_int("vocab_size", d.n_vocab) : c.get_int("vocab_size");
  cfg.n_ctx_train = c.get_int("max_position_embeddings", d.n_ctx);
  cfg.norm_eps = static_cast<float>(c.get_number("rms_norm_eps", d.norm_eps));
  cfg.tied_embeddings = c.get_bool("tie_word_embeddings", d.tied);
  cfg.bos_token_id = c.get_token_id("bos_token_id");
  cfg.eos_token_id = c.get_token_id("eos_token_id");
  cfg.pad_token_id = c.get_token_id("pad_token_id");
  TEMPER_CHECK(cfg.n_layer > 0 && cfg.n_layer <= 4096,
               "config.json: key 'num_hidden_layers' must be in 1..4096, got ", cfg.n_layer);
}

LayerConfig read_uniform_attention(const ConfigView& c, int d_model, int default_head_dim) {
  LayerConfig layer;
  layer.n_head = c.get_int("num_attention_heads");
  TEMPER_CHECK(layer.n_head > 0, "config.json: key 'num_attention_heads' must be > 0, got ",
               layer.n_head);
  layer.n_head_kv = c.get_int("num_key_value_heads", layer.n_head);
  layer.head_dim =
      c.get_int("head_dim", default_head_dim > 0 ? default_head_dim : d_model / layer.n_head);
  layer.n_rot = layer.head_dim;
  const auto rope_params = c.get_object("rope_parameters");
  layer.rope_theta = static_cast<float>(
      rope_params && rope_params->has("rope_theta") ? rope_params->get_number("rope_theta")
                                                     : c.get_number("rope_theta", 10000.0));
  if (const auto scaling = rope_params ? rope_params : c.get_object("rope_scaling"))
    apply_rope_scaling(*scaling, layer);
  return layer;
}

void require_false(const ConfigView& c, std::string_view key) {
  TEMPER_CHECK(!c.get_bool(key, false), "config.json: key '", c.key_name(key),
               "' is true, which temper does not support");
}

void require_string(const ConfigView& c, std::string_view key, std::string_view expected) {
  if (!c.has(key)) return;
  const std::string v = c.get_string(key);
  TEMPER_CHECK(v == expected, "config.json: key '", c.key_name(key), "' is \"", v,
               "\"; temper supports only \"", expected, "\" for this architecture");
}

std::optional<std::string> canonical_hf_name(std::string_view name) {
  static constexpr std::string_view kTowers[] = {
      "model.vision_tower.", "model.embed_vision.", "model.audio_tower.", "model.embed_audio.",
      "model.multi_modal_projector.", "vision_tower.", "multi_modal_projector.",
  };
  for (std::string_view t : kTowers)
    if (name.starts_with(t)) return std::nullopt;
  static constexpr std::pair<std::string_view, std::string_view> kWrappers[] = {
      {"model.language_model.", "model."},
      {"language_model.model.", "model."},
      {"language_model.lm_head", "lm_head"},
  };
  for (auto [from, to] : kWrappers)
    if (name.starts_with(from)) return cat(to, name.substr(from.size()));
  return std::string(name);
}

bool is_rotary_buffer(std::string_view canonical) {
  return canonical.ends_with("rotary_emb.inv_freq");
}

bool ignore_rotary_buffers(const ModelConfig&, std::string_view canonical) { return is_rotary_buffer(canonical); }

void repeat_layer(ModelConfig& cfg, LayerConfig layer) {
  for (int i = 0; i < cfg.n_layer; ++i) {
    layer.kv_source_layer = i;
    cfg.layers.push_back(layer);
  }
}

std::optional<std::pair<int, std::string_view>> split_layer_name(std::string_view name) {
  constexpr std::string_view kPrefix = "model.layers.";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  int layer = 0;
  size_t i = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i < 6)
    layer = layer * 10 + (name[i++] - '0');
  if (i == 0 || i >= name.size() || name[i] != '.') return std::nullopt;
  return std::pair<int, std::string_view>{layer, name.substr(i + 1)};
}

namespace shapes {

namespace {
const LayerConfig& L(const ModelConfig& c, int l) { return c.layers.at(l); }
bool owns_kv(const ModelConfig& c, int l) { return L(c, l).kv_source_layer == l; }
bool has_dense(const ModelConfig& c, int l) {
  return L(c, l).ffn != FfnKind::kMoe && L(c, l).d_ff > 0;
}
bool has_moe(const ModelConfig& c, int l) { return L(c, l).ffn != FfnKind::kDense; }
}  // namespace

Shape token_embd(const ModelConfig& c, int) { return {c.n_vocab, c.d_model}; }
Shape output(const ModelConfig& c, int) { return {c.n_vocab, c.d_model}; }
Shape model_vec(const ModelConfig& c, int) { return {c.d_model}; }
Shape attn_q(const ModelConfig& c, int l) {
  return {int64_t{L(c, l).n_head} * L(c, l).head_dim, c.d_model};
}
Shape attn_kv(const ModelConfig& c, int l) {
  if (!owns_kv(c, l)) return {};
  return {int64_t{L(c, l).n_head_kv} * L(c, l).head_dim, c.d_model};
}
Shape attn_v(const ModelConfig& c, int l) {
  if (L(c, l).k_eq_v) return {};
  return attn_kv(c, l);
}
Shape attn_out(const ModelConfig& c, int l) {
  return {c.d_model, int64_t{L(c, l).n_head} * L(c, l).head_dim};
}
Shape head_vec(const ModelConfig& c, int l) { return {L(c, l).head_dim}; }
Shape kv_head_vec(const ModelConfig& c, int l) {
  if (!owns_kv(c, l)) return {};
  return {L(c, l).head_dim};
}
Shape ffn_up(const ModelConfig& c, int l) {
  if (!has_dense(c, l)) return {};
  return {L(c, l).d_ff, c.d_model};
}
Shape ffn_down(const ModelConfig& c, int l) {
  if (!has_dense(c, l)) return {};
  return {c.d_model, L(c, l).d_ff};
}
Shape ffn_vec(const ModelConfig& c, int l) {
  if (!has_dense(c, l)) return {};
  return {c.d_model};
}
Shape moe_vec(const ModelConfig& c, int l) {
  if (!has_moe(c, l)) return {};
  return {c.d_model};
}
Shape router(const ModelConfig& c, int l) {
  if (!has_moe(c, l)) return {};
  return {L(c, l).n_expert, c.d_model};
}
Shape expert_up(const ModelConfig& c, int l) {
  if (!has_moe(c, l)) return {};
  return {L(c, l).d_ff_expert, c.d_model};
}
Shape expert_down(const ModelConfig& c, int l) {
  if (!has_moe(c, l)) return {};
  return {c.d_model, L(c, l).d_ff_expert};
}

}  // namespace shapes

void permute_rope_rows(float* w, int64_t n_rows, int64_t n_cols, int n_head) {
  TEMPER_CHECK(n_head > 0 && n_rows % (2 * n_head) == 0, "cannot permute ", n_rows,
               " rows into ", n_head, " heads");
  const int64_t d = n_rows / n_head, half = d / 2;
  std::vector<float> head(size_t(d * n_cols));
  for (int h = 0; h < n_head; ++h) {
    float* base = w + h * d * n_cols;
    std::memcpy(head.data(), base, head.size() * sizeof(float));
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j)
        std::memcpy(base + (2 * j + i) * n_cols, head.data() + (i * half + j) * n_cols,
                    size_t(n_cols) * sizeof(float));
  }
}

std::vector<TensorSpec> llama_style_tensors(bool qk_norm, bool permute_qk) {
  using namespace shapes;
  std::vector<TensorSpec> t = {
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
  };
  if (permute_qk) {  // HF's half-split RoPE rows -> llama.cpp's interleaved pairs
    for (auto& row : t) {
      if (row.role == TensorRole::kAttnQ) row.to_gguf = GgufTransform::kPermuteRopeQ;
      if (row.role == TensorRole::kAttnK) row.to_gguf = GgufTransform::kPermuteRopeK;
    }
  }
  if (qk_norm) {
    t.insert(t.end(), {
      {.role = TensorRole::kAttnQNorm, .hf_name = "model.layers.{L}.self_attn.q_norm.weight",
       .gguf_name = "blk.{L}.attn_q_norm.weight", .flags = kPerLayer,
       .quant_class = QuantClass::kKeepF32, .shape = head_vec},
      {.role = TensorRole::kAttnKNorm, .hf_name = "model.layers.{L}.self_attn.k_norm.weight",
       .gguf_name = "blk.{L}.attn_k_norm.weight", .flags = kPerLayer,
       .quant_class = QuantClass::kKeepF32, .shape = kv_head_vec},
    });
  }
  t.insert(t.end(), {
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
  });
  return t;
}

std::vector<LlamaCppIssue> rope_freq_factors_issue(const ModelConfig& cfg, std::string_view graph_file) {
  for (const LayerConfig& l : cfg.layers)
    if (!l.rope_freq_factors.empty())
      return {{"rope_scaling", cat("per-frequency RoPE factors (llama3-type scaling) are not applied by llama.cpp's graph "
                                   "for this architecture (", graph_file, ": ggml_rope_ext without freq factors)")}};
  return {};
}

}  // namespace temper::arch
