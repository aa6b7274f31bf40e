// Private to gemv_avx2.cpp (included under its AVX2 target pragma): row kernels for the
// 256-weight k-quant super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Each super-block's bytes are
// loaded once; bit fields are unpacked eight weights at a time into 32-bit lanes. The f32
// operations per weight are those of quant/blocks_k.cpp and quant/blocks_k_low.cpp (built with
// -ffp-contract=off), so the weights are bit-identical to dequantize_row's.
#pragma once
#include "forward/gemv_avx2_common.h"
#include "quant/quant_common.h"

namespace temper::forward::detail::avx2 {

using quant::kQK_K;

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

// Q2_K and Q3_K share the layout of the low two bits: weight e = 128h + 32s + l (h = 0..1,
// s = 0..3, l = 0..31) is bits 2s..2s+1 of qs[32h + l]; its 16-weight scale is number
// 8h + 2s + l/16. Q2_K: d·(sc & 15)·q − dmin·(sc >> 4). Q3_K: a third bit, bit 4h + s of
// hmask[l], cleared meaning −4; scale d·(6-bit signed scale).
template <int T, bool kThree>
__attribute__((always_inline)) inline void row_q23_K(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const __m256i three = _mm256_set1_epi32(3), one = _mm256_set1_epi32(1), four = _mm256_set1_epi32(4);
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const uint8_t *qs, *hmask = nullptr;
    float dl[16], ml[16] = {};
    if constexpr (kThree) {
      const auto& b = reinterpret_cast<const quant::BlockQ3_K*>(row)[i];
      qs = b.qs, hmask = b.hmask;
      const float d = f16(b.d);
      for (int j = 0; j < 16; ++j) {  // quant/blocks_k_low.cpp q3_K_scale
        const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
        dl[j] = d * float(int8_t((lo | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32));
      }
    } else {
      const auto& b = reinterpret_cast<const quant::BlockQ2_K*>(row)[i];
      qs = b.qs;
      const float d = f16(b.d), dmin = f16(b.dmin);
      for (int j = 0; j < 16; ++j) dl[j] = d * float(b.scales[j] & 0xF), ml[j] = dmin * float(b.scales[j] >> 4);
    }
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; l += 8) {
        const __m256i v = load8_u8(qs + 32 * h + l);
        __m256i hm = _mm256_setzero_si256();
        if constexpr (kThree) hm = load8_u8(hmask + l);
        const auto w = [&](int s) {
          __m256i q = _mm256_and_si256(_mm256_srli_epi32(v, 2 * s), three);
          const int j = 8 * h + 2 * s + l / 16;
          if constexpr (kThree) {
            const __m256i hb = _mm256_and_si256(_mm256_srli_epi32(hm, 4 * h + s), one);
            q = _mm256_sub_epi32(_mm256_or_si256(q, _mm256_slli_epi32(hb, 2)), four);
            return _mm256_mul_ps(_mm256_set1_ps(dl[j]), _mm256_cvtepi32_ps(q));
          } else {
            return mul_sub_q(q, _mm256_set1_ps(dl[j]), _mm256_set1_ps(ml[j]));
          }
        };
        const int64_t base = i * kQK_K + 128 * h + l;
        acc.add(w(0), base, 0);
        acc.add(w(1), base + 32, 1);
        acc.add(w(2), base + 64, 0);
        acc.add(w(3), base + 96, 1);
      }
    }
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
      const auto& b = reinterpret_cast<const quant::BlockQ5_K*>(row)[i];
      scales = b.scales, qs = b.qs, qh = b.qh, dh = b.d, mh = b.dmin;
    } else {
      const auto& b = reinterpret_cast<const quant::BlockQ4_K*>(row)[i];
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
          lo = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * c), one), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * c + 1), one), 4));
        }
        acc.add(mul_sub_q(lo, d0, n0), base + l, 0);
        acc.add(mul_sub_q(hi, d1, n1), base + 32 + l, 1);
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
    const auto& b = reinterpret_cast<const quant::BlockQ6_K*>(row)[i];
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

}  // namespace temper::forward::detail::avx2
