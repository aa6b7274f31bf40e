// AVX2+FMA+F16C small-batch kernels (see gemv.h). The whole file is compiled for that target
// through `#pragma GCC target`, which gives every function here (templates and member functions
// included) the target attribute; callers check gemv_avx2_available() first, so the binary runs
// on CPUs without AVX2 as long as this path is not taken.
//
// Every weight is dequantised with the same f32 operations, in the same order, as
// quant::dequantize_row (mul then sub, no fusion: the dequantisers are built with
// -ffp-contract=off), so the weights are bit-identical to the oracle's and only the
// accumulation order differs.
#include <immintrin.h>

#include <cstdint>

#include "forward/gemv.h"
#include "quant/quant_common.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace temper::forward::detail {
namespace {

using quant::BlockQ4_K;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::kQK;
using quant::kQK_K;

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// ggml get_scale_min_k4 (as in quant/blocks_k.cpp).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

inline __m256i load8_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Accumulators for T tokens; two per token so consecutive FMAs do not wait on each other.
template <int T>
struct Acc {
  const float* x;
  int64_t K;
  __m256 a[T][2];
  float tail[T] = {};
  Acc(const float* x_, int64_t K_) : x(x_), K(K_) {
    for (int t = 0; t < T; ++t) a[t][0] = a[t][1] = _mm256_setzero_ps();
  }
  // w holds weights k .. k+7.
  __attribute__((always_inline)) void add(__m256 w, int64_t k, int slot) {
    for (int t = 0; t < T; ++t) a[t][slot] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + t * K + k), a[t][slot]);
  }
  void add_scalar(float w, int64_t k) {
    for (int t = 0; t < T; ++t) tail[t] += w * x[t * K + k];
  }
  float sum(int t) const {
    const __m256 v = _mm256_add_ps(a[t][0], a[t][1]);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s) + tail[t];
  }
};

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

template <int T>
__attribute__((always_inline)) inline void row_q8_0(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(row);
  for (int64_t i = 0; i < K / kQK; ++i) {
    const __m256 d = _mm256_set1_ps(f16(b[i].d));
    const auto q8 = [&](int l) {
      const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[i].qs + l)));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(q), d);
    };
    acc.add(q8(0), i * kQK, 0);
    acc.add(q8(8), i * kQK + 8, 1);
    acc.add(q8(16), i * kQK + 16, 0);
    acc.add(q8(24), i * kQK + 24, 1);
  }
}

// Q4_K and Q5_K: sub-block j (32 weights) is d·sc_j·q − dmin·m_j; sub-blocks 2c and 2c+1
// share the 32 bytes qs[32c ..] (low and high nibbles); Q5_K's fifth bit of weight l of
// sub-block j is bit j of qh[l].
template <int T, bool kFive>
__attribute__((always_inline)) inline void row_q45_K(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const __m256i low4 = _mm256_set1_epi32(0xF), one = _mm256_set1_epi32(1);
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const uint8_t *scales, *qs, *qh = nullptr;
    uint16_t dh, mh;
    if constexpr (kFive) {
      const auto& b = reinterpret_cast<const BlockQ5_K*>(row)[i];
      scales = b.scales, qs = b.qs, qh = b.qh, dh = b.d, mh = b.dmin;
    } else {
      const auto& b = reinterpret_cast<const BlockQ4_K*>(row)[i];
      scales = b.scales, qs = b.qs, dh = b.d, mh = b.dmin;
    }
    const float d = f16(dh), dmin = f16(mh);
    for (int c = 0; c < 4; ++c) {
      uint8_t s0, m0, s1, m1;
      scale_min_k4(2 * c, scales, &s0, &m0);
      scale_min_k4(2 * c + 1, scales, &s1, &m1);
      const __m256 d0 = _mm256_set1_ps(d * float(s0)), n0 = _mm256_set1_ps(dmin * float(m0));
      const __m256 d1 = _mm256_set1_ps(d * float(s1)), n1 = _mm256_set1_ps(dmin * float(m1));
      const int64_t base = i * kQK_K + 64 * c;
      for (int l = 0; l < 32; l += 8) {
        const __m256i v = load8_u8(qs + 32 * c + l);
        __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_srli_epi32(v, 4);
        if constexpr (kFive) {
          const __m256i h = load8_u8(qh + l);
          lo = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(h, _mm_cvtsi32_si128(2 * c)), one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(h, _mm_cvtsi32_si128(2 * c + 1)), one), 4));
        }
        acc.add(_mm256_sub_ps(_mm256_mul_ps(d0, _mm256_cvtepi32_ps(lo)), n0), base + l, 0);
        acc.add(_mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(hi)), n1), base + 32 + l, 1);
      }
    }
  }
}

// Q6_K: in each half h (128 weights), weight 32p + l (p = 0..3) takes its low nibble from
// ql[l + 32(p & 1)] (low nibble for p < 2, high for p >= 2) and its top two bits from
// qh[l] >> 2p; scale scales[weight / 16]; value d·scale·(q − 32).
template <int T>
__attribute__((always_inline)) inline void row_q6_K(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const __m256i low4 = _mm256_set1_epi32(0xF), three = _mm256_set1_epi32(3), bias = _mm256_set1_epi32(32);
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[i];
    const float d = f16(b.d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      const int64_t base = i * kQK_K + 128 * h;
      for (int l = 0; l < 32; l += 8) {
        const __m256i a = load8_u8(ql + l), c = load8_u8(ql + l + 32), hb = load8_u8(qh + l);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_slli_epi32(_mm256_and_si256(hb, three), 4)),
            _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2), three), 4)),
            _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 4), three), 4)),
            _mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_srli_epi32(hb, 6), 4))};
        // e = 32p + l within the half; 8 weights share one 16-weight scale.
        const auto w = [&](int p) {
          const __m256 s = _mm256_set1_ps(d * float(sc[(32 * p + l) / 16]));
          return _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(q[p], bias)));
        };
        acc.add(w(0), base + l, 0);
        acc.add(w(1), base + 32 + l, 1);
        acc.add(w(2), base + 64 + l, 0);
        acc.add(w(3), base + 96 + l, 1);
      }
    }
  }
}

template <int T>
void rows(const Matrix& w, int64_t r0, int64_t r1, const float* x, float* y, int64_t ldy) {
  const int64_t K = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    Acc<T> acc(x, K);
    const uint8_t* row = w.row(r);
    switch (w.dtype) {
      case DType::kF32: row_f32(row, K, acc); break;
      case DType::kF16: row_f16(row, K, acc); break;
      case DType::kBF16: row_bf16(row, K, acc); break;
      case DType::kQ8_0: row_q8_0(row, K, acc); break;
      case DType::kQ4_K: row_q45_K<T, false>(row, K, acc); break;
      case DType::kQ5_K: row_q45_K<T, true>(row, K, acc); break;
      case DType::kQ6_K: row_q6_K(row, K, acc); break;
      default: __builtin_unreachable();  // gemv_avx2_supports was checked
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = acc.sum(t);
  }
}

}  // namespace

void gemv_rows_avx2(DType, const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T,
                    float* y, int64_t ldy) {
  switch (T) {
    case 1: rows<1>(w, r0, r1, x, y, ldy); break;
    case 2: rows<2>(w, r0, r1, x, y, ldy); break;
    case 3: rows<3>(w, r0, r1, x, y, ldy); break;
    case 4: rows<4>(w, r0, r1, x, y, ldy); break;
    case 5: rows<5>(w, r0, r1, x, y, ldy); break;
    case 6: rows<6>(w, r0, r1, x, y, ldy); break;
    case 7: rows<7>(w, r0, r1, x, y, ldy); break;
    default: rows<8>(w, r0, r1, x, y, ldy); break;
  }
}

}  // namespace temper::forward::detail

#pragma GCC pop_options
