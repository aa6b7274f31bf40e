// GPTQ-style quantization of one weight matrix into standard ggml blocks (Frantar et al. 2022,
// arXiv:2210.17323), given the second moment of its inputs H = mean over tokens of x·xᵀ:
// columns are rounded left to right and each column's rounding error is pushed onto the columns
// not yet rounded through the Cholesky factor of H⁻¹, so that the output error
// tr((W−Q) H (W−Q)ᵀ) stays small rather than the weight error. Each ggml block's scales (and
// mins) come from ggml's own importance-weighted search (imatrix = diag H) on the error-updated
// weights when the block's first column is reached; the codes are then rounded against those
// fixed scales and packed into the block, so any ggml decoder reads the result.
//
// Glossary: N = rows (outputs), K = columns (inputs), bs = elements per ggml block.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace temper {

struct GptqOptions {
  double damp = 0.01;      // added to H's diagonal, times its mean (GPTQ's percdamp)
  // Passes > 1 re-choose each block's scales from the values its columns had when the previous
  // pass rounded them; the pass with the lowest output error is kept.
  int passes = 2;
};

struct GptqResult {
  std::vector<uint8_t> bytes;  // N rows of type t
  double error_gptq = 0, error_plain = 0;  // tr((W−Q) H (W−Q)ᵀ) / N, H undamped
  bool used_gptq = false;      // false: ggml's imatrix rounding had the lower error and is kept
};

// w: (N, K) row-major; h: (K, K) symmetric, row-major. K must be a whole number of blocks of t
// and quant::has_block_codes(t). Deterministic: rows run in parallel, each row's arithmetic is
// fixed, and the only cross-row products (BLAS) do not depend on the row split.
GptqResult gptq_quantize(DType t, const float* w, int64_t n_rows, int64_t n_cols, const std::vector<double>& h,
                         const GptqOptions& opt);

// tr((W−Q) H (W−Q)ᵀ) / N with Q the decoded bytes (N rows of type t).
double output_error(DType t, const float* w, const uint8_t* q, int64_t n_rows, int64_t n_cols,
                    const std::vector<double>& h);

}  // namespace temper
