// fp32 backward kernels of the training pass, each the partner of a forward kernel the runtime
// already has (runtime/forward/kernels.h, matmul.h, layers.h) and each checked against its
// scalar reference in train/ref/backward_scalar.h. Frozen weights stay in their stored type
// and are dequantised one tile at a time (forward::for_each_f32_tile); no kernel ever computes
// a gradient for a base weight.
//
// Dimension glossary: n = tokens, K = input features, N = output features (rows of W),
// r = LoRA rank, D = row length, NH/NKV = query/key-value heads, HD = head_dim,
// H = d_model. Matrices are row-major. "accumulates": adds into the output buffer.
#pragma once
#include <cstdint>
#include <vector>

#include "forward/kernels.h"
#include "forward/layers.h"
#include "forward/weights.h"
#include "train/train.h"

namespace temper::train {

// dx (n, K) = dy (n, N; rows ldy apart) · W, or += when accumulate. The VJP of
// forward::matmul_forward w.r.t. x.
void matmul_backward(float* dx, const float* dy, int64_t ldy, const forward::Matrix& w,
                     int64_t n, bool accumulate, std::vector<float>& scratch);

// LoRA on a projection: y (n, N; rows ldy apart) += s · u · Bᵀ with u = x · Aᵀ saved for the
// backward. A (r, K), B (N, r) are PEFT's lora_A / lora_B weights.
void lora_forward(float* y, int64_t ldy,
                  float* u,        // (n, r) out
                  const float* x,  // (n, K)
                  const float* a, const float* b, float s, int64_t n, int64_t K, int64_t N,
                  int r);
// Its VJP: dx (n, K), da (r, K), db (N, r) accumulate. du is scratch (n, r).
void lora_backward(float* dx, float* da, float* db, float* du,
                   const float* dy, int64_t ldy,  // (n, N)
                   const float* x, const float* u, const float* a, const float* b, float s,
                   int64_t n, int64_t K, int64_t N, int r);

// VJP of forward::rmsnorm_forward w.r.t. inp (weights frozen); dinp accumulates. dinp must
// not alias dout or inp.
void rmsnorm_backward(float* dinp, const float* dout, const float* inp, const float* weight,
                      float weight_offset, int64_t n_rows, int dim, float eps);

// VJP of forward::rope_forward, in place: the inverse rotation, which is the forward kernel at
// the negated positions (cos is even, sin odd), so both directions share one kernel.
void rope_backward(float* dx, const int32_t* positions, int64_t n, int n_head,
                   int64_t row_stride, const forward::RopeParams& p);

// VJP of forward::glu_forward: dgate, dup (n) overwritten; may not alias the inputs.
void glu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                  const float* up, int64_t n, Activation act);

// VJP of forward::attention_forward_masked for a batch attending to itself (pos0 = 0): dq,
// dk, dv overwritten. `out` and `lse` are what the forward produced; probabilities are
// recomputed from lse. Two passes, each over independent outputs: (token, query head) for dq,
// (key, kv head) for dk and dv, so no two threads ever add into the same float.
void attention_backward(float* dq,              // (n, NH*HD)
                        float* dk, float* dv,   // (n, NKV*HD)
                        const float* dout,      // (n, NH*HD)
                        const float* q,         // (n, NH*HD), RoPE applied
                        const float* k, const float* v,  // (n, NKV*HD)
                        const float* out,       // (n, NH*HD)
                        const float* lse,       // (n, NH)
                        const int32_t* first_key,  // (n) or nullptr
                        int64_t n, int NH, int NKV, int HD, int window, float scale);

// Fused, chunked cross-entropy over the output projection: returns the sum over tokens with
// target >= 0 of -log softmax(z)[target], z = softcap(h · Wᵀ) (softcap 0: none), and sets
// dh (n, H) = grad_scale · d(sum)/dh (zero rows for untrained tokens). W (V, H) is visited one
// dequantised tile of rows at a time with an online softmax (running max, rescaled sums), so
// only (trained tokens × tile rows) logits ever exist, never n × V: at most kLogitElems of them
// (16 MiB of f32, a 512-token sequence against 8192 vocabulary rows at a time).
inline constexpr int64_t kLogitElems = int64_t(1) << 22;
// `logit_elems` is that budget (smaller in tests, to cut tiles at odd rows).
double cross_entropy(float* dh, const float* h, const forward::Matrix& w, const int32_t* target,
                     int64_t n, float softcap, float grad_scale, std::vector<float>& scratch,
                     int64_t logit_elems = kLogitElems);

// VJP of forward::route_tokens w.r.t. the router logits (dlogits (n, E) overwritten), for the
// experts `r` chose: through the renormalisation, the per-expert scales and the softmax; the
// top-k choice itself is piecewise constant. dw (n, K): gradient of each routing weight.
void route_backward(float* dlogits, const float* dw, const float* logits,
                    const forward::Routing& r, int64_t n, int E, int K, bool renormalise,
                    const std::vector<float>& expert_scale);

// The adapters on one MoE layer's experts: per expert, the pair on its gate, up and down
// projection (nullptr: none), all of rank `rank` and scale `scale`.
struct ExpertAdapters {
  std::vector<LoraPair*> gate, up, down;  // (E) each
  float scale = 0;
  int rank = 0;
  // forward::moe_forward's hook adding each adapter's s · (x Aᵀ) Bᵀ to its projection.
  forward::ExpertHook hook() const;
};

// VJP of forward::moe_forward w.r.t. its router input and expert input (both (n, H), both
// accumulate; they may be one buffer when the forward read one input for both). Recomputes
// the routing and the chosen experts' activations; expert weights stay frozen. With
// `adapters` (the forward ran adapters->hook()), their dA, dB accumulate too.
void moe_backward(float* drouter_in, float* dexpert_in, const float* dout, const float* router_in,
                  const float* expert_in, const forward::LayerWeights& w,
                  const LayerConfig& layer, int64_t n, int H, Activation act, bool renormalise,
                  std::vector<float>& scratch, const ExpertAdapters* adapters = nullptr);

}  // namespace temper::train
