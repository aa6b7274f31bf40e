// Block quantization with ggml's exact bytes: quantize rows of f32 into a DType (Q4_0 ... Q6_K,
// IQ4_NL, IQ4_XS, F16, BF16, F32) with or without an importance matrix, and dequantize back.
// Output is byte-identical to ggml_quantize_chunk (checked against ggml in tests/quant).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace temper::quant {

// True for the types quantize_rows/dequantize_row handle.
bool supports(DType t);

// Bytes of one row of n_per_row elements; throws Error if n_per_row is not a whole number of blocks.
size_t row_bytes(DType t, int64_t n_per_row);

// Quantizes n_rows rows of n_per_row floats into dst (n_rows * row_bytes bytes) and returns the
// byte count. imatrix holds n_per_row importance weights shared by all rows, or is null; like
// ggml_quantize_chunk it selects the importance-weighted search (Q8_0 and the float types ignore
// it). Rows run in parallel on the OpenMP pool; the bytes do not depend on the thread count.
// Throws Error for an unsupported type or a row length that is not a whole number of blocks.
size_t quantize_rows(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                     const float* imatrix);

// The same with the plain scalar ports of ggml's functions, single-threaded: the oracle the
// vectorised kernels are tested against.
size_t quantize_rows_ref(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                         const float* imatrix);

// Decodes n elements (a whole number of blocks) of type t, as ggml's to_float does.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

}  // namespace temper::quant
