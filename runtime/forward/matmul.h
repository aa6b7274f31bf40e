// y = x · Wᵀ for a weight matrix in its stored type. Up to kGemvMaxTokens tokens go to the
// small-batch kernels of gemv.h. For more, W is dequantised one tile of rows at a
// time into an f32 scratch (OpenMP over rows), then multiplied with OpenBLAS sgemm outside
// any parallel region; f32 weights aligned to 4 bytes go to sgemm directly.
//
// Dimension glossary: T = tokens (rows of x), K = W.cols (input features), N = W.rows.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "forward/weights.h"

namespace temper::forward {

// y (T, ldy) columns [0, N) = x (T, K) · Wᵀ. ldy >= N lets callers write into wider rows.
void matmul_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy,
                    std::vector<float>& scratch);

// Calls fn(r0, nr, tile) for consecutive row tiles of W, in order: `tile` holds rows
// [r0, r0+nr) as f32 (nr, K) row-major, dequantised into `scratch` (OpenMP over rows) or, for
// aligned f32 weights, pointing into W itself (then one call covers all rows). `fn` runs outside
// any parallel region, so it may call OpenBLAS. The forward matmul and the trainer's backward
// products and fused cross-entropy share this one tiling.
void for_each_f32_tile(const Matrix& w, std::vector<float>& scratch,
                       const std::function<void(int64_t r0, int64_t nr, const float* tile)>& fn);

// Row `r` of W as f32 (embedding lookup).
void matrix_row(float* out, const Matrix& w, int64_t r);

}  // namespace temper::forward
