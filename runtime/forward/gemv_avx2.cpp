// AVX2+FMA+F16C small-batch kernels (see gemv.h). The whole file is compiled for that target
// through `#pragma GCC target`, which gives every function here (templates, lambdas and the
// inline functions of the gemv_avx2_*.h headers it includes) the target attribute; callers
// check gemv_avx2_available() first, so the binary runs on CPUs without AVX2 as long as this
// path is not taken.
//
// Float types, Q4_0 … Q5_1, IQ4_*, Q2_K and Q3_K dequantise each weight with the same f32
// operations, in the same order, as quant::dequantize_row (mul then sub, no fusion: the
// dequantisers are built with -ffp-contract=off), so the weights are bit-identical to the
// oracle's and only the accumulation order differs. Q8_0, Q4_K, Q5_K and Q6_K factor the block
// scale (and minimum) out of the sum (gemv_avx2_kquants.h, dot32_strided): fewer operations per
// weight, different rounding, within the bound tests/forward/gemv_test.cpp derives.
#include <cstdint>

#include "forward/gemv.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "forward/gemv_avx2_common.h"
#include "forward/gemv_avx2_kquants.h"
#include "forward/gemv_avx2_legacy.h"

namespace temper::forward::detail {
namespace {

using namespace avx2;

// The row kernels are forced inline into rows<T>, where the Acc is a local, so the
// accumulators stay in registers (an Acc passed by reference to a kernel left out of line lives
// in memory: a store-forwarding chain per FMA); they pass only compile-time slots to add().
template <int T>
__attribute__((always_inline)) inline void row_f32(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* p = reinterpret_cast<const float*>(row);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    acc.add(_mm256_loadu_ps(p + k), k, 0);
    acc.add(_mm256_loadu_ps(p + k + 8), k + 8, 1);
  }
  for (; k + 8 <= K; k += 8) acc.add(_mm256_loadu_ps(p + k), k, 0);
  for (; k < K; ++k) {
    float w;
    __builtin_memcpy(&w, p + k, 4);
    acc.add_scalar(w, k);
  }
}

template <int T>
__attribute__((always_inline)) inline void row_f16(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* p = reinterpret_cast<const uint16_t*>(row);
  int64_t k = 0;
  const auto h8 = [p](int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))); };
  for (; k + 16 <= K; k += 16) {
    acc.add(h8(k), k, 0);
    acc.add(h8(k + 8), k + 8, 1);
  }
  for (; k + 8 <= K; k += 8) acc.add(h8(k), k, 0);
  for (; k < K; ++k) acc.add_scalar(f16(p[k]), k);
}

template <int T>
__attribute__((always_inline)) inline void row_bf16(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* p = reinterpret_cast<const uint16_t*>(row);
  int64_t k = 0;
  const auto b8 = [p](int64_t i) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  };
  for (; k + 16 <= K; k += 16) {
    acc.add(b8(k), k, 0);
    acc.add(b8(k + 8), k + 8, 1);
  }
  for (; k + 8 <= K; k += 8) acc.add(b8(k), k, 0);
  for (; k < K; ++k) acc.add_scalar(__builtin_bit_cast(float, uint32_t(p[k]) << 16), k);
}

// Q8_0, strided like the k-quants (gemv_avx2_kquants.h, dot32_strided; x permuted by the
// caller): byte b of each 32-bit lane sign-extended by two shifts, no byte shuffles; the block
// scale d factored out of the sum (d·Σ q·x, no minimum, so the oracle's bound holds).
template <int T>
__attribute__((always_inline)) inline void row_q8_0(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row);
  for (int64_t i = 0; i < K / quant::kQK; ++i) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs));
    const __m256i q[4] = {_mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24), _mm256_srai_epi32(_mm256_slli_epi32(v, 16), 24),
                          _mm256_srai_epi32(_mm256_slli_epi32(v, 8), 24), _mm256_srai_epi32(v, 24)};
    if (i & 1) dot32_strided<T, 1>(q, _mm256_set1_ps(f16(b[i].d)), i * quant::kQK, acc);
    else dot32_strided<T, 0>(q, _mm256_set1_ps(f16(b[i].d)), i * quant::kQK, acc);
  }
}

// Rows [r0, r1) for T tokens (x rows K apart, y rows ldy apart).
template <int T>
void rows(const Matrix& w, int64_t r0, int64_t r1, const float* x, float* y, int64_t ldy, const float* xsum32) {
  const int64_t K = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    Acc<T> acc(x, K, xsum32);
    const uint8_t* row = w.row(r);
    switch (w.dtype) {
      case DType::kF32: row_f32(row, K, acc); break;
      case DType::kF16: row_f16(row, K, acc); break;
      case DType::kBF16: row_bf16(row, K, acc); break;
      case DType::kQ8_0: row_q8_0(row, K, acc); break;
      case DType::kQ4_0: row_legacy<T, 0>(row, K, acc); break;
      case DType::kQ4_1: row_legacy<T, 1>(row, K, acc); break;
      case DType::kQ5_0: row_legacy<T, 2>(row, K, acc); break;
      case DType::kQ5_1: row_legacy<T, 3>(row, K, acc); break;
      case DType::kIQ4_NL: row_iq4_nl(row, K, acc); break;
      case DType::kIQ4_XS: row_iq4_xs(row, K, acc); break;
      case DType::kQ2_K: row_q23_K<T, false>(row, K, acc); break;
      case DType::kQ3_K: row_q23_K<T, true>(row, K, acc); break;
      case DType::kQ4_K: row_q45_K<T, false>(row, K, acc); break;
      case DType::kQ5_K: row_q45_K<T, true>(row, K, acc); break;
      case DType::kQ6_K: row_q6_K(row, K, acc); break;
      default: __builtin_unreachable();  // gemv_avx2_supports was checked
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = acc.sum(t);
  }
}

void rows_any(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, float* y, int64_t ldy,
              const float* xsum32) {
  switch (T) {
    case 1: rows<1>(w, r0, r1, x, y, ldy, xsum32); break;
    case 2: rows<2>(w, r0, r1, x, y, ldy, xsum32); break;
    case 3: rows<3>(w, r0, r1, x, y, ldy, xsum32); break;
    case 4: rows<4>(w, r0, r1, x, y, ldy, xsum32); break;
    case 5: rows<5>(w, r0, r1, x, y, ldy, xsum32); break;
    case 6: rows<6>(w, r0, r1, x, y, ldy, xsum32); break;
    case 7: rows<7>(w, r0, r1, x, y, ldy, xsum32); break;
    default: rows<8>(w, r0, r1, x, y, ldy, xsum32); break;
  }
}

}  // namespace

void gemv_rows_avx2(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                    int64_t ldy, const float* xsum32) {
  // More than 8 tokens would not fit their accumulators in the 16 ymm registers: the rows are
  // done in groups of up to 8 tokens. The caller's row range is small (gemv.cpp kRowChunk), so
  // the second group reads the weights from L1/L2, not memory.
  for (int64_t t0 = 0; t0 < T; t0 += 8)
    rows_any(w, r0, r1, x + t0 * w.cols, T - t0 < 8 ? T - t0 : 8, y + t0 * ldy, ldy,
             xsum32 ? xsum32 + t0 * (w.cols / 32) : nullptr);
}

}  // namespace temper::forward::detail

#pragma GCC pop_options
