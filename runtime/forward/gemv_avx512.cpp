// AVX-512 (F, BW, VL) + FMA + F16C small-batch kernels (see gemv.h). Compiled with those
// -m options for this file only (runtime/CMakeLists.txt); gemv_forward calls them only after
// gemv_avx512_available().
//
// 16 weights per zmm register, two accumulators per token, tokens in groups of 8 (16
// accumulators of the 32 registers). Every kernel dequantises each weight with the same f32
// operations as quant::dequantize_row (float(q)·d, no fusion), so the weights are bit-identical
// to the oracle's and only the accumulation order differs: the plain bound γ_K·Σ|w·x| of
// tests/forward/gemv_test.cpp holds. Activations are read in their natural order (no
// permutation, no sub-block sums), unlike the AVX2 strided kernels.
// No F32 kernel: on Zen 5 it read 15-17 GB/s against AVX2's 19-28 (bench_gemv, 1 thread), so
// F32 stays on AVX2.
#include <immintrin.h>

#include <cstdint>

#include "forward/gemv.h"
#include "quant/quant_common.h"

namespace temper::forward::detail {
namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

template <int T>
struct Acc512 {
  const float* x;
  int64_t K;
  __m512 a[T][2];
  float tail[T] = {};
  Acc512(const float* x_, int64_t K_) : x(x_), K(K_) {
    for (int t = 0; t < T; ++t) a[t][0] = a[t][1] = _mm512_setzero_ps();
  }
  // w holds weights k .. k+15.
  __attribute__((always_inline)) void add(__m512 w, int64_t k, int slot) {
    for (int t = 0; t < T; ++t) a[t][slot] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + t * K + k), a[t][slot]);
  }
  void add_scalar(float w, int64_t k) {
    for (int t = 0; t < T; ++t) tail[t] += w * x[t * K + k];
  }
  float sum(int t) const { return _mm512_reduce_add_ps(_mm512_add_ps(a[t][0], a[t][1])) + tail[t]; }
};

// Float rows: 16 weights a step from `load16`, then a scalar tail (K need not be a multiple of 16).
template <int T, typename Load16, typename Load1>
__attribute__((always_inline)) inline void row_float(int64_t K, Acc512<T>& acc, Load16 load16, Load1 load1) {
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    acc.add(load16(k), k, 0);
    acc.add(load16(k + 16), k + 16, 1);
  }
  for (; k + 16 <= K; k += 16) acc.add(load16(k), k, 0);
  for (; k < K; ++k) acc.add_scalar(load1(k), k);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

template <int T>
__attribute__((always_inline)) inline void row(DType type, const uint8_t* row, int64_t K, Acc512<T>& acc) {
  using quant::kQK;
  switch (type) {
    case DType::kF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(row);
      row_float(K, acc, [p](int64_t i) { return _mm512_cvtph_ps(load256(p + i)); },
                [p](int64_t i) { return f16(p[i]); });
      break;
    }
    case DType::kBF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(row);
      row_float(K, acc,
                [p](int64_t i) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(load256(p + i)), 16)); },
                [p](int64_t i) { return __builtin_bit_cast(float, uint32_t(p[i]) << 16); });
      break;
    }
    case DType::kQ8_0: {  // w = float(q)·d
      const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row);
      for (int64_t i = 0; i < K / kQK; ++i) {
        const __m512 d = _mm512_set1_ps(f16(b[i].d));
        acc.add(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(load128(b[i].qs))), d), i * kQK, 0);
        acc.add(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(load128(b[i].qs + 16))), d), i * kQK + 16, 1);
      }
      break;
    }
    case DType::kQ4_0: {  // w = float(q − 8)·d; weight j < 16 is the low nibble of qs[j], j + 16 the high
      const auto* b = reinterpret_cast<const quant::BlockQ4_0*>(row);
      const __m512i mask = _mm512_set1_epi32(0xF), eight = _mm512_set1_epi32(8);
      for (int64_t i = 0; i < K / kQK; ++i) {
        const __m512 d = _mm512_set1_ps(f16(b[i].d));
        const __m512i q = _mm512_cvtepu8_epi32(load128(b[i].qs));
        const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(q, mask), eight);
        const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(q, 4), eight);
        acc.add(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), i * kQK, 0);
        acc.add(_mm512_mul_ps(_mm512_cvtepi32_ps(hi), d), i * kQK + 16, 1);
      }
      break;
    }
    default: __builtin_unreachable();  // gemv_avx512_supports was checked
  }
}

template <int T>
void rows(const Matrix& w, int64_t r0, int64_t r1, const float* x, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    Acc512<T> acc(x, w.cols);
    row(w.dtype, w.row(r), w.cols, acc);
    for (int t = 0; t < T; ++t) y[t * ldy + r] = acc.sum(t);
  }
}

}  // namespace

void gemv_rows_avx512(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                      int64_t ldy, const float*) {
  for (int64_t t0 = 0; t0 < T; t0 += 8) {
    const float* xt = x + t0 * w.cols;
    float* yt = y + t0 * ldy;
    switch (T - t0 < 8 ? T - t0 : 8) {
      case 1: rows<1>(w, r0, r1, xt, yt, ldy); break;
      case 2: rows<2>(w, r0, r1, xt, yt, ldy); break;
      case 3: rows<3>(w, r0, r1, xt, yt, ldy); break;
      case 4: rows<4>(w, r0, r1, xt, yt, ldy); break;
      case 5: rows<5>(w, r0, r1, xt, yt, ldy); break;
      case 6: rows<6>(w, r0, r1, xt, yt, ldy); break;
      case 7: rows<7>(w, r0, r1, xt, yt, ldy); break;
      default: rows<8>(w, r0, r1, xt, yt, ldy); break;
    }
  }
}

}  // namespace temper::forward::detail
