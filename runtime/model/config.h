// ModelConfig: what the forward pass, the exporters and the trainer need to know about a model,
// as *features* and a *per-layer* configuration (Gemma 4 varies head geometry, KV sharing,
// RoPE and MoE by layer). Nothing here names an architecture except `arch`, which only the
// registry and the exporters read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace temper {

enum class Activation : uint8_t { kSilu, kGeluTanh };
// How a checkpoint's Q/K rows pair up for RoPE. HF checkpoints use kHalf (rotate_half: dim j
// pairs with j + d/2); llama.cpp's LLAMA_ROPE_TYPE_NORM uses kInterleaved (2j, 2j+1).
enum class RopeStyle : uint8_t { kHalf, kInterleaved };
enum class FfnKind : uint8_t { kDense, kMoe, kDenseAndMoe };

struct LayerConfig {
  int n_head = 0;            // query heads
  int n_head_kv = 0;         // key/value heads (GQA)
  int head_dim = 0;          // per-head dim of q, k and v
  int d_ff = 0;              // dense MLP width (0: no dense MLP)
  int window = 0;            // sliding-window length in tokens; 0 = global attention
  float rope_theta = 10000;  // RoPE base
  int n_rot = 0;             // leading dims (of head_dim) that rotate; == head_dim for full RoPE
  // Per-frequency divisors (head_dim/2 entries, llama.cpp `rope_freqs`); empty = all 1.
  // Llama 3 "llama3" scaling and Gemma 4 "proportional" RoPE are expressed this way.
  std::vector<float> rope_freq_factors;
  float rope_pos_scale = 1;  // positions are multiplied by this (HF "linear" scaling: 1/factor)
  // LongRoPE (HF "longrope", llama.cpp rope_factors_long/short): a context longer than
  // rope_long_after tokens divides by these factors instead of rope_freq_factors (which then
  // hold the short ones). Empty = no long factors. See rope_factors_for.
  std::vector<float> rope_freq_factors_long;
  int rope_long_after = 0;     // HF original_max_position_embeddings; > 0 with long factors
  float rope_attn_factor = 1;  // cos and sin are multiplied by this (LongRoPE attention factor)
  int kv_source_layer = -1;  // layer whose K/V this layer uses (== own index if it owns KV)
  bool k_eq_v = false;       // V is the raw K projection (Gemma 4 full layers without v_proj)
  FfnKind ffn = FfnKind::kDense;
  int n_expert = 0, n_expert_used = 0, d_ff_expert = 0;
  bool has_layer_scalar = false;  // Gemma 4 `layer_scalar`
};

struct ModelConfig {
  std::string arch;                // registry id: "llama", "gemma3", "gemma4", "qwen3", "qwen3moe"
  std::string hf_architecture;     // as in config.json "architectures"[0]
  int d_model = 0;                 // hidden size
  int n_layer = 0;
  int n_vocab = 0;
  int n_ctx_train = 0;             // max_position_embeddings
  float norm_eps = 1e-5f;
  float norm_weight_offset = 0;    // 1 for Gemma 1-3 (RMSNorm scales by 1 + w), else 0
  bool post_norms = false;         // sandwich norms after attention and FFN (Gemma)
  bool qk_norm = false;            // RMSNorm on each q and k head before RoPE (Qwen 3, Gemma 3/4)
  bool v_norm = false;             // unweighted RMSNorm on v (Gemma 4)
  Activation act = Activation::kSilu;
  float embed_scale = 0;           // multiply embeddings by this; 0 = no scaling
  float attn_scale = 0;            // q.k scale; 0 = 1/sqrt(head_dim)
  float final_softcap = 0;         // logits = c * tanh(logits / c); 0 = off
  bool tied_embeddings = false;
  RopeStyle rope_style = RopeStyle::kHalf;
  int ple_dim = 0;                 // Gemma 4 per-layer-embedding width (0 = none)
  int ple_vocab = 0;
  bool moe_norm_topk = true;       // renormalise the top-k router weights to sum 1
  int bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;
  std::vector<LayerConfig> layers;  // n_layer entries
};

// The frequency divisors a context of n_ctx tokens uses in `layer`: the long LongRoPE factors
// when it has them and n_ctx > rope_long_after (llama.cpp's rule, llama_model::get_rope_factors,
// and HF's for one full-sequence forward of n_ctx tokens), else rope_freq_factors.
const std::vector<float>& rope_factors_for(const LayerConfig& layer, int n_ctx);

// Throws Error naming the first inconsistent field (e.g. head_dim * n_head mismatch).
void validate_config(const ModelConfig& cfg);

}  // namespace temper
