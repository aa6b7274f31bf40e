// Scalar references of the forward kernels: plain loops, double accumulators, no OpenMP, no
// BLAS. Same signatures as forward/kernels.h, forward/matmul.h and forward/layers.h; the fast
// kernels are tested against these. Never optimise them.
#pragma once
#include <cstdint>
#include <vector>

#include "forward/kernels.h"
#include "forward/weights.h"

namespace temper::forward::ref {

void rmsnorm_forward(float* out, const float* inp, const float* weight, float weight_offset,
                     int64_t n_rows, int dim, float eps);
void rope_forward(float* x, const int32_t* positions, int64_t n_tokens, int n_head,
                  int64_t row_stride, const RopeParams& p);
void softmax_forward(float* x, int64_t n_rows, int n);
void glu_forward(float* out, const float* gate, const float* up, int64_t n, Activation act);
void softcap_forward(float* x, int64_t n, float cap);
// y (T, ldy) = x (T, K) · Wᵀ with each weight row dequantised and a double dot product.
void matmul_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy);
void attention_forward(float* out, const float* q, const float* k_cache, const float* v_cache,
                       int64_t n_tokens, int64_t pos0, int n_head, int n_head_kv, int head_dim,
                       int window, float scale);

}  // namespace temper::forward::ref
