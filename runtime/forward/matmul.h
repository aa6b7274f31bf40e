// y = x · Wᵀ for a weight matrix in its stored type. Up to kGemvMaxTokens tokens go to the
// small-batch kernels of gemv.h. For more, W is dequantised one tile of rows at a
// time into an f32 scratch (OpenMP over rows), then multiplied with OpenBLAS sgemm outside
// any parallel region; f32 weights aligned to 4 bytes go to sgemm directly.
//
// Dimension glossary: T = tokens (rows of x), K = W.cols (input features), N = W.rows.
#pragma once
#include <cstdint>
#include <vector>

#include "forward/weights.h"

namespace temper::forward {

// y (T, ldy) columns [0, N) = x (T, K) · Wᵀ. ldy >= N lets callers write into wider rows.
void matmul_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy,
                    std::vector<float>& scratch);

// Row `r` of W as f32 (embedding lookup).
void matrix_row(float* out, const Matrix& w, int64_t r);

}  // namespace temper::forward
