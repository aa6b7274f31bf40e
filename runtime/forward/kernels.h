// Element-wise and row-wise kernels of the forward pass: RMSNorm, RoPE, softmax, activations,
// softcap. fp32 in and out; long reductions accumulate in double. Each has a scalar double
// reference with the same signature in forward/ref/ref_kernels.h.
//
// Dimension glossary: T = tokens in the batch, D = row length (d_model, head_dim, ...),
// NH = heads, HD = head_dim, R = rotated dims of a head (n_rot).
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace temper::forward {

// out = inp * (mean(inp^2) + eps)^-1/2 * (weight_offset + weight) per row; weight == nullptr
// means an unweighted norm (v_norm, the expert router's norm). out may equal inp.
void rmsnorm_forward(float* out,           // (n_rows, D)
                     const float* inp,     // (n_rows, D)
                     const float* weight,  // (D) or nullptr
                     float weight_offset, int64_t n_rows, int dim, float eps);

// RoPE of one layer: the rotation frequencies and how dims pair up.
struct RopeParams {
  RopeStyle style = RopeStyle::kHalf;
  int head_dim = 0;
  int n_rot = 0;                 // leading dims that rotate (even, <= head_dim)
  float pos_scale = 1;           // positions are multiplied by this
  std::vector<double> inv_freq;  // n_rot/2 entries: theta^(-2j/n_rot) / freq_factor_j
  float mscale = 1;              // cos and sin are multiplied by this (rotated dims only)
};
// theta^(-2j/n_rot) / factors[j] for j < n_rot/2 (factors empty = all 1), in double.
RopeParams make_rope_params(RopeStyle style, int head_dim, int n_rot, float theta,
                            const std::vector<float>& factors, float pos_scale);
// The RoPE `layer` applies in a context of n_ctx tokens: its factors by rope_factors_for
// (LongRoPE's long ones past rope_long_after) and its attention factor as mscale.
RopeParams make_rope_params(RopeStyle style, const LayerConfig& layer, int n_ctx);

// Rotates every head of every token in place. kHalf pairs dim j with j + R/2 (HF rotate_half);
// kInterleaved pairs 2j with 2j+1 (GGUF's NORM rope type). Dims >= R pass through.
void rope_forward(float* x,                  // (T, NH, HD), rows `row_stride` floats apart
                  const int32_t* positions,  // (T)
                  int64_t n_tokens, int n_head, int64_t row_stride, const RopeParams& p);

// Numerically stable softmax of each row in place.
void softmax_forward(float* x, int64_t n_rows, int n);

// out = act(gate) * up (gated MLP). out may equal gate or up.
void glu_forward(float* out, const float* gate, const float* up, int64_t n, Activation act);
// x = act(x) in place.
void act_forward(float* x, int64_t n, Activation act);
// x = cap * tanh(x / cap) in place.
void softcap_forward(float* x, int64_t n, float cap);

// Scalar activations shared with the reference (double in, double out).
double gelu_tanh(double x);
double silu(double x);

}  // namespace temper::forward
