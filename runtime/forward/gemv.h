// Small-batch matrix product (decode): y = x · Wᵀ for n_tokens <= kGemvMaxTokens. Each
// quantised block of W is read once, dequantised in registers (or a block-sized L1 buffer on
// the portable path) and dotted with every token's activations; f32 accumulation, activations
// stay f32. Threaded over output rows: OpenMP (the one pool of core/threads.h), chunks of
// kGemvRowChunk rows handed out dynamically, so a thread whose core is busy with another
// process does not hold back the rest.
//
// Paths, chosen at run time from the CPU's features (each is compiled for its ISA in its own
// file, so the binary does not need -march=native): AVX-512 (F/BW/VL + FMA + F16C) kernels for
// F16, BF16, Q8_0 and Q4_0; AVX2+FMA+F16C kernels for every stored type; a portable path
// for every type dequantize_row handles. A type the chosen path lacks falls to the next one.
// TEMPER_GEMV_PATH=portable|avx2|avx512 (or TEMPER_PORTABLE_KERNELS=1, or set_gemv_path) forces a
// path; forcing one the CPU lacks is an error.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "forward/weights.h"

namespace temper::forward {

// Up to 16 tokens: past that, dequantising a tile once and running sgemm wins (bench_gemv).
inline constexpr int64_t kGemvMaxTokens = 16;
// Rows per unit of work: small enough for dynamic balance, large enough that the claim (one
// atomic) is noise, and 16 f32 outputs are one 64-byte line, so threads rarely share a line.
inline constexpr int64_t kGemvRowChunk = 16;

enum class GemvPath : uint8_t { kAuto, kPortable, kAvx2, kAvx512 };

// True if this CPU has AVX2, FMA and F16C.
bool gemv_avx2_available();
// True if this CPU (and OS) has AVX-512 F, BW and VL, plus AVX2, FMA and F16C.
bool gemv_avx512_available();
// True if the AVX-512 path has a kernel for t (others fall back to AVX2).
bool gemv_avx512_supports(DType t);
const char* gemv_path_name(GemvPath p);
// True if the AVX2 path has a kernel for t (the portable path handles every quant::supports type).
bool gemv_avx2_supports(DType t);
// Selects the path for later calls (kAuto: the best the CPU has, unless TEMPER_GEMV_PATH or
// TEMPER_PORTABLE_KERNELS=1 says otherwise). A path the CPU lacks is an error.
void set_gemv_path(GemvPath p);
// The path gemv_forward uses for type t under the current selection.
GemvPath gemv_path_for(DType t);

// y (T, ldy) columns [0, N) = x (T, K) · Wᵀ, T = n_tokens in [1, kGemvMaxTokens].
void gemv_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy);

// Oracle for tests: each row dequantised with quant::dequantize_row, dot in double.
void gemv_reference(double* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy);

namespace detail {
// Rows [r0, r1) for T tokens: y[t*ldy + r] = Σ_k w[r][k] x[t*K + k]. The AVX2 entry is
// defined in gemv_avx2.cpp and is only called after gemv_avx2_available(); the portable one
// handles every type quant::dequantize_row does. xsum32 (T, K/32): sums of x over 32-element
// sub-blocks, which the AVX2 Q4_K/Q5_K kernels use for their minimum term (gemv_xsum32_needed).
void gemv_rows_avx2(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                    int64_t ldy, const float* xsum32);
void gemv_rows_avx512(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                      int64_t ldy, const float* xsum32);
void gemv_rows_portable(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                        int64_t ldy, const float* xsum32);
inline bool gemv_xsum32_needed(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K; }
// The AVX2 kernels for these types read x permuted within each 32-element group:
// x'[32g + 8b + i] = x[32g + 4i + b] (gemv_avx2_kquants.h, dot32_strided).
inline bool gemv_x_permuted(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K;
}
}  // namespace detail

}  // namespace temper::forward
