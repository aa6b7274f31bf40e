// Shared pieces of the architecture files: typed config.json readers whose errors name the key
// and the expected type, layer-pattern and RoPE-scaling parsing, checkpoint-name handling, and
// HF shape functions that read only the (per-layer) ModelConfig.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "model/arch.h"
#include "model/config.h"

namespace temper::arch {

// A JSON object of config.json (or a sub-object such as "rope_scaling") with typed getters.
// A key holding null counts as missing. Errors read
//   config.json: key 'rope_scaling.factor' must be a number, got string
class ConfigView {
 public:
  // `obj` must outlive the view. `prefix` names the sub-object in errors ("rope_scaling.").
  explicit ConfigView(const Json& obj, std::string prefix = "");

  bool has(std::string_view key) const;  // present and not null
  int get_int(std::string_view key) const;  // required; must fit in int
  int get_int(std::string_view key, int fallback) const;
  double get_number(std::string_view key) const;
  double get_number(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, std::string_view fallback) const;
  std::optional<ConfigView> get_object(std::string_view key) const;  // nullopt when missing
  // Missing -> empty. Every element must have the right type.
  std::vector<std::string> get_string_list(std::string_view key) const;
  std::vector<int> get_int_list(std::string_view key) const;
  // Token ids are an int or a list of ints (eos_token_id: [1, 106]); -1 when missing, the
  // first entry for a list.
  int get_token_id(std::string_view key) const;

  std::string key_name(std::string_view key) const { return prefix_ + std::string(key); }
  const Json& json() const { return *obj_; }

 private:
  const Json& at(std::string_view key) const;  // throws when missing
  [[noreturn]] void type_error(std::string_view key, std::string_view expected,
                               const Json& got) const;
  const Json* obj_;
  std::string prefix_;
};

// config.json with "text_config" merged into the root (the root's own keys lose), as
// llama.cpp's converter does. Idempotent, so callers may pass an already merged object.
Json merge_text_config(const Json& root);

// Per-layer attention type: true = sliding. From "layer_types" when present (must have
// n_layer entries of "sliding_attention"/"full_attention"), else layer i slides iff
// (i + 1) % pattern != 0; `last_full` forces the last layer to full (Gemma 4).
std::vector<bool> sliding_layers(const ConfigView& c, int n_layer, int pattern, bool last_full);

// Applies an HF rope scaling object ({"rope_type"|"type": ..., ...}) to `layer`, whose
// head_dim, n_rot and rope_theta must already be set. Supports "default", "linear"
// (rope_pos_scale = 1/factor) and "llama3" (rope_freq_factors); anything else is an Error
// naming the key.
void apply_rope_scaling(const ConfigView& scaling, LayerConfig& layer);

// llama.cpp's rope_freqs for HF "llama3" scaling: per frequency j < n_rot/2, the divisor
// original/scaled of the rotation frequency theta^(-2j/n_rot).
std::vector<float> llama3_freq_factors(double theta, int n_rot, double factor,
                                       double low_freq_factor, double high_freq_factor,
                                       double original_max_positions);

// Fills the fields every architecture reads the same way: hf_architecture, d_model, n_layer,
// n_vocab, n_ctx_train, norm_eps, tied_embeddings, token ids. Defaults are the HF config
// class defaults of the architecture (vocab_size 0 = required).
struct CommonDefaults {
  std::string_view hf_architecture;
  int n_ctx = 0;
  double norm_eps = 1e-6;
  bool tied = false;
  int n_vocab = 0;
};
void read_common_fields(const ConfigView& c, std::string_view arch_id, const CommonDefaults& d,
                        ModelConfig& cfg);

// The attention geometry and RoPE of a uniform decoder (Llama, Qwen 3): num_attention_heads,
// num_key_value_heads (default: no GQA), head_dim (default: `default_head_dim`, or
// hidden_size / num_attention_heads when it is 0), full rotation, rope_theta (default 1e4) and
// rope_scaling, or transformers v5's rope_parameters holding both.
LayerConfig read_uniform_attention(const ConfigView& c, int d_model, int default_head_dim);

// Refuses a key that would change the math in a way temper does not implement when it is
// set to something other than its neutral value (e.g. attention_bias: true).
void require_false(const ConfigView& c, std::string_view key);
void require_string(const ConfigView& c, std::string_view key, std::string_view expected);

// Checkpoint names shared by all archs: strips multimodal wrappers ("model.language_model.",
// "language_model.model.", "language_model.lm_head") and returns nullopt for vision/audio
// towers and projectors.
std::optional<std::string> canonical_hf_name(std::string_view name);
// RoPE inv_freq buffers that old checkpoints carry.
bool is_rotary_buffer(std::string_view canonical);
// ArchSpec::ignorable for architectures whose only ignorable tensors are rotary buffers.
bool ignore_rotary_buffers(const ModelConfig&, std::string_view canonical);
// Appends n_layer copies of `layer`, each owning its K/V (kv_source_layer = its index).
void repeat_layer(ModelConfig& cfg, LayerConfig layer);
// For llama.cpp graphs that pass no RoPE frequency factors (ggml_rope_ext(..., nullptr, ...) in
// `graph_file`): an issue when a layer has them (llama3-type rope_scaling), else nothing.
std::vector<LlamaCppIssue> rope_freq_factors_issue(const ModelConfig& cfg, std::string_view graph_file);
// Layer index of "model.layers.{L}.<rest>", and <rest>; nullopt for other names.
std::optional<std::pair<int, std::string_view>> split_layer_name(std::string_view canonical);

// HF shapes (PyTorch order). An empty vector means "absent for this layer".
namespace shapes {
using Shape = std::vector<int64_t>;
Shape token_embd(const ModelConfig& c, int);
Shape output(const ModelConfig& c, int);
Shape model_vec(const ModelConfig& c, int);          // [H]
Shape attn_q(const ModelConfig& c, int l);           // [n_head*hd, H]
Shape attn_kv(const ModelConfig& c, int l);          // [n_kv*hd, H]; absent when KV is shared
Shape attn_v(const ModelConfig& c, int l);           // also absent when k_eq_v
Shape attn_out(const ModelConfig& c, int l);         // [H, n_head*hd]
Shape head_vec(const ModelConfig& c, int l);         // [hd]
Shape kv_head_vec(const ModelConfig& c, int l);      // [hd]; absent when KV is shared
Shape ffn_up(const ModelConfig& c, int l);           // [d_ff, H]; absent without dense MLP
Shape ffn_down(const ModelConfig& c, int l);         // [H, d_ff]
Shape ffn_vec(const ModelConfig& c, int l);          // [H] when the layer has a dense MLP
Shape moe_vec(const ModelConfig& c, int l);          // [H] when the layer has experts
Shape router(const ModelConfig& c, int l);           // [E, H]
Shape expert_up(const ModelConfig& c, int l);        // one expert: [I_e, H]
Shape expert_down(const ModelConfig& c, int l);      // one expert: [H, I_e]
}  // namespace shapes

// The Llama-style decoder rows shared by llama, qwen3 and qwen3moe: embedding, final norm,
// optional lm_head, attention (with q_norm/k_norm when `qk_norm`; llama.cpp's q/k row
// permutation when `permute_qk`) and the dense SwiGLU MLP, in that order.
std::vector<TensorSpec> llama_style_tensors(bool qk_norm, bool permute_qk);

// The kPermuteRopeQ/K transform, llama.cpp's LlamaModel.permute, on the rows of `w` (n_rows x
// n_cols): within each of `n_head` heads, HF row j (< d/2) goes to 2j and row j + d/2 to 2j + 1
// (half-split RoPE -> interleaved pairs). Used on weights (quantize) and on LoRA B (adapters).
void permute_rope_rows(float* w, int64_t n_rows, int64_t n_cols, int n_head);

}  // namespace temper::arch
