// Attention and mixture-of-experts blocks of the decoder (internal to runtime/forward).
//
// Dimension glossary: T = tokens in the batch, P0 = cached positions before the batch,
// NH = query heads, NKV = key/value heads, HD = head_dim, H = d_model, E = experts,
// K = experts used per token, I = expert width.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "forward/weights.h"
#include "model/config.h"

namespace temper::forward {

// Causal (and, with window > 0, sliding-window) attention of T queries at positions
// P0 .. P0+T-1 against a cache holding positions [0, P0+T). Query head h reads KV head
// h / (NH / NKV) (GQA). A key at k_pos is visible to q_pos iff k_pos <= q_pos and, when
// window > 0, q_pos - k_pos < window.
void attention_forward(float* out,            // (T, NH*HD)
                       const float* q,        // (T, NH*HD), RoPE applied
                       const float* k_cache,  // (>= P0+T, NKV*HD)
                       const float* v_cache,  // (>= P0+T, NKV*HD)
                       int64_t n_tokens, int64_t pos0, int n_head, int n_head_kv, int head_dim,
                       int window, float scale);

// The same attention with two additions training needs. `first_key` (T entries, or nullptr
// for 0) is the first key position each query may see: with several examples packed into one
// sequence it is the start of the query's example, so no attention crosses an example
// boundary. `lse` (T, NH), when not nullptr, receives each softmax's log-sum-exp (max score +
// log of the denominator) for the backward pass. attention_forward is this with both nullptr.
void attention_forward_masked(float* out,               // (T, NH*HD)
                              float* lse,               // (T, NH) or nullptr
                              const float* q,           // (T, NH*HD), RoPE applied
                              const float* k_cache,     // (>= P0+T, NKV*HD)
                              const float* v_cache,     // (>= P0+T, NKV*HD)
                              const int32_t* first_key,  // (T) or nullptr
                              int64_t n_tokens, int64_t pos0, int n_head, int n_head_kv,
                              int head_dim, int window, float scale);

// Routing: softmax over E router logits, the top K (ties: lower index), optionally
// renormalised to sum 1, then multiplied by per-expert scales when given.
struct Routing {
  std::vector<int32_t> expert;  // (T, K)
  std::vector<float> weight;    // (T, K)
};
Routing route_tokens(const float* router_logits,  // (T, E)
                     int64_t n_tokens, int n_expert, int n_used, bool renormalise,
                     const std::vector<float>& expert_scale);

// Called after each expert projection with its input rows x (n, in) and output rows y
// (n, out), so a caller can add to y (the trainer's expert adapters; the runtime passes none).
enum class ExpertProj : uint8_t { kGate, kUp, kDown };
using ExpertHook =
    std::function<void(int expert, ExpertProj which, float* y, const float* x, int64_t n)>;

// out = Σ_k weight_k · down_e(act(gate_e · x) ⊙ (up_e · x)) over each token's routed experts,
// summed in routing order. Router logits come from `router_in`, experts read `expert_in`.
void moe_forward(float* out,              // (T, H)
                 const float* router_in,  // (T, H)
                 const float* expert_in,  // (T, H)
                 const LayerWeights& w, const LayerConfig& layer, int64_t n_tokens, int d_model,
                 Activation act, bool renormalise, std::vector<float>& scratch,
                 const ExpertHook& hook = {});

class Model;

// Token embeddings x (T, H), times the model's embedding scale when it has one.
void embed_tokens(float* x, const int32_t* tokens, int64_t T, const Model& model);

// Per-layer embedding inputs (ple_dim P > 0): ple (T, n_layer * P) from the tokens and their
// scaled embeddings x (T, H). tok_scratch: (T, n_layer * P). Throws Error for a token outside
// the per-layer table. They depend on nothing trainable, so training keeps them as constants.
void per_layer_inputs(float* ple, float* tok_scratch, const int32_t* tokens, const float* x,
                      int64_t T, const Model& model, std::vector<float>& scratch);

// The router input of experts beside a dense MLP (FfnKind::kDenseAndMoe): the unweighted
// RMS-normed residual x (T, H) times the router's scale vector / sqrt(H).
void router_input(float* out, const float* x, const LayerWeights& w, int64_t T, int H, float eps);

}  // namespace temper::forward
