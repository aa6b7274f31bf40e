// Private to gemv_avx2.cpp (included under its AVX2 target pragma): row kernels for the
// 256-weight k-quant super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Each super-block's bytes are
// loaded once. Q2_K and Q3_K dequantise with the f32 operations of quant/blocks_k_low.cpp
// (built with -ffp-contract=off): weights bit-identical to dequantize_row's. Q4_K, Q5_K and
// Q6_K factor the sub-block scale (and minimum) out of the sum instead (dot32_strided), which
// changes the rounding within the bound gemv_test.cpp derives.
#pragma once
#include "forward/gemv_avx2_common.h"
#include "quant/quant_common.h"

namespace temper::forward::detail::avx2 {

using quant::kQK_K;

// The eight 6-bit scales and eight 6-bit minimums of a Q4_K/Q5_K super-block (ggml
// get_scale_min_k4 for j = 0..7, as in quant/blocks_k.cpp) as float vectors d·sc and dmin·m,
// unpacked 4 bytes at a time (ggml's utmp arrangement): scalar code per sub-block cost about as
// much as the vector work on its 32 weights.
inline void scales_mins_k4(const uint8_t* q, float d, float dmin, __m256* sc, __m256* mn) {
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  uint32_t u[3];
  __builtin_memcpy(u, q, 12);
  // Scales 0..3: low 6 bits of bytes 0..3; 4..7: low nibble of bytes 8..11 | top 2 bits of 0..3.
  // Mins 0..3: low 6 bits of bytes 4..7; 4..7: high nibble of bytes 8..11 | top 2 bits of 4..7.
  const uint32_t s_lo = u[0] & kLow6, s_hi = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);
  const uint32_t m_lo = u[1] & kLow6, m_hi = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);
  const __m256i si = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(uint64_t(s_lo) | (uint64_t(s_hi) << 32))));
  const __m256i mi = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(uint64_t(m_lo) | (uint64_t(m_hi) << 32))));
  *sc = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(si));
  *mn = _mm256_mul_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(mi));
}

// Lane j of v in all lanes.
inline __m256 lane(__m256 v, int j) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j)); }

// Every k-quant kernel unpacks the bit fields of 32 weights at a time into one register of
// signed bytes q (256-bit byte operations: a few per 32 weights, where unpacking into 32-bit
// lanes cost a few per 8, and the kernels were compute-bound; bench_gemv), then dot32 widens
// them eight at a time to f32 and applies the sub-block factors: scale·float(q) [− min].
// The factors are computed once per super-block into small float arrays (sc, mn).
// q never goes through memory: a 32-byte store read back as 8-byte loads would wait for the
// store to retire (no store-to-load forwarding for a narrower load at an offset).
template <int T, bool kMin>
__attribute__((always_inline)) inline void dot32(__m256i q, const float* sc0, const float* sc1, const float* mn0,
                                                 const float* mn1, int64_t k, Acc<T>& acc) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const auto w = [&](__m128i v, const float* sc, const float* mn) {
    const __m256 x = _mm256_mul_ps(_mm256_broadcast_ss(sc), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
    if constexpr (kMin) return _mm256_sub_ps(x, _mm256_broadcast_ss(mn));
    else return x;
  };
  acc.add(w(lo, sc0, mn0), k, 0);
  acc.add(w(_mm_unpackhi_epi64(lo, lo), sc0, mn0), k + 8, 1);
  acc.add(w(hi, sc1, mn1), k + 16, 0);
  acc.add(w(_mm_unpackhi_epi64(hi, hi), sc1, mn1), k + 24, 1);
}

// Q4_K, Q5_K, Q6_K: no byte shuffles. Their weights are read as eight 32-bit lanes of 4 packed
// bytes; byte b of lane i holds weight 4i + b of a 32-weight group, so shifting and masking all
// lanes at once yields weights {4i + b}: a stride of 4. The activations were permuted once per
// call to match (gemv_x_permuted: x'[32g + 8b + i] = x[32g + 4i + b]), so the eight lanes meet
// their activations with one plain load. Per 8 weights: shift, mask, convert, FMA; widening
// bytes to lanes took three shuffles per 8 on the one or two shuffle ports, which bounded
// these kernels at ~1 weight per cycle.
//
// The scale is factored out of each group: P = Σ float(q)·x' per lane, then acc += scale·P,
// and the Q4_K/Q5_K minimum is applied per super-block from the activations' 32-sums
// (min_term). That is not the oracle's arithmetic (it rounds scale·(q·x) instead of
// (scale·q − min)·x), so the error bound is γ_K·Σ(|scale·q| + |min|)·|x| (gemv_test.cpp).
//
// One group of 32 weights: q_b (b = 0..3) are its four strided octets as int32 lanes; scale
// per lane (one sub-block, or two halves of 16 for Q6_K).
template <int T, int kSlot>
__attribute__((always_inline)) inline void dot32_strided(const __m256i* q, __m256 scale, int64_t k, Acc<T>& acc) {
  const __m256 f0 = _mm256_cvtepi32_ps(q[0]), f1 = _mm256_cvtepi32_ps(q[1]);
  const __m256 f2 = _mm256_cvtepi32_ps(q[2]), f3 = _mm256_cvtepi32_ps(q[3]);
  for (int t = 0; t < T; ++t) {
    const float* x = acc.x + t * acc.K + k;
    __m256 p = _mm256_mul_ps(f0, _mm256_loadu_ps(x));
    p = _mm256_fmadd_ps(f1, _mm256_loadu_ps(x + 8), p);
    p = _mm256_fmadd_ps(f2, _mm256_loadu_ps(x + 16), p);
    p = _mm256_fmadd_ps(f3, _mm256_loadu_ps(x + 24), p);
    acc.a[t][kSlot] = _mm256_fmadd_ps(scale, p, acc.a[t][kSlot]);
  }
}

// acc −= Σ_j min_j·X_j for the 8 sub-blocks of super-block i, X = the activations' 32-sums.
template <int T>
__attribute__((always_inline)) inline void min_term(__m256 m, int64_t i, Acc<T>& acc) {
  for (int t = 0; t < T; ++t)
    acc.a[t][1] = _mm256_fnmadd_ps(m, _mm256_loadu_ps(acc.xsum32 + t * (acc.K / 32) + 8 * i), acc.a[t][1]);
}

inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256i bytes(int v) { return _mm256_set1_epi8(char(v)); }
// 0x10 (or `value`) in each byte whose bit `mask` is set in h, else 0.
inline __m256i bit_to(__m256i h, int mask, int value) {
  const __m256i m = bytes(mask);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, m), m), bytes(value));
}

// Q2_K and Q3_K share the layout of the low two bits: weight e = 128h + 32s + l (h = 0..1,
// s = 0..3, l = 0..31) is bits 2s..2s+1 of qs[32h + l]; its 16-weight scale is number e / 16.
// Q2_K: d·(sc & 15)·q − dmin·(sc >> 4). Q3_K: a third bit, bit 4h + s of hmask[l], cleared
// meaning −4; scale d·(6-bit signed scale), as quant/blocks_k_low.cpp q3_K_scale.
template <int T, bool kThree>
__attribute__((always_inline)) inline void row_q23_K(const uint8_t* row, int64_t K, Acc<T>& acc) {
  float sc[16], mn[16];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const uint8_t* qs;
    __m256i hmask = _mm256_setzero_si256();
    if constexpr (kThree) {
      const auto& b = reinterpret_cast<const quant::BlockQ3_K*>(row)[i];
      qs = b.qs, hmask = load32(b.hmask);
      const float d = f16(b.d);
      for (int j = 0; j < 16; ++j) {
        const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
        sc[j] = d * float(int8_t((lo | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32));
      }
    } else {
      const auto& b = reinterpret_cast<const quant::BlockQ2_K*>(row)[i];
      qs = b.qs;
      const float d = f16(b.d), dmin = f16(b.dmin);
      for (int j = 0; j < 16; ++j) sc[j] = d * float(b.scales[j] & 0xF), mn[j] = dmin * float(b.scales[j] >> 4);
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i v = load32(qs + 32 * h);
      for (int s = 0; s < 4; ++s) {
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), bytes(3));
        if constexpr (kThree) q = _mm256_sub_epi8(_mm256_or_si256(q, bit_to(hmask, 1 << (4 * h + s), 4)), bytes(4));
        const int j = 8 * h + 2 * s;
        dot32<T, !kThree>(q, sc + j, sc + j + 1, mn + j, mn + j + 1, i * kQK_K + 128 * h + 32 * s, acc);
      }
    }
  }
}

// Q4_K and Q5_K (strided, scale and minimum factored out; see dot32_strided): sub-block j
// (32 weights) is d·sc_j·q − dmin·m_j; sub-blocks 2c and 2c+1 share the 32 bytes qs[32c ..]
// (low and high nibbles); Q5_K's fifth bit of weight l of sub-block j is bit j of qh[l].
template <int T, bool kFive>
__attribute__((always_inline)) inline void row_q45_K(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const __m256i low4 = _mm256_set1_epi32(0xF), sixteen = _mm256_set1_epi32(16);
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const uint8_t *scales, *qs;
    __m256i qh = _mm256_setzero_si256();
    uint16_t dh, mh;
    if constexpr (kFive) {
      const auto& b = reinterpret_cast<const quant::BlockQ5_K*>(row)[i];
      scales = b.scales, qs = b.qs, qh = load32(b.qh), dh = b.d, mh = b.dmin;
    } else {
      const auto& b = reinterpret_cast<const quant::BlockQ4_K*>(row)[i];
      scales = b.scales, qs = b.qs, dh = b.d, mh = b.dmin;
    }
    __m256 sc, mn;
    scales_mins_k4(scales, f16(dh), f16(mh), &sc, &mn);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = load32(qs + 32 * c);
      __m256i lo[4], hi[4];
      for (int b = 0; b < 4; ++b) {
        lo[b] = _mm256_and_si256(_mm256_srli_epi32(v, 8 * b), low4);
        hi[b] = _mm256_and_si256(_mm256_srli_epi32(v, 8 * b + 4), low4);
        if constexpr (kFive) {  // bit 8b + j of the qh lane moved straight to bit 4
          const auto bit4 = [&](int j) {
            const int shift = 8 * b + j - 4;
            return _mm256_and_si256(shift >= 0 ? _mm256_srli_epi32(qh, shift) : _mm256_slli_epi32(qh, -shift), sixteen);
          };
          lo[b] = _mm256_or_si256(lo[b], bit4(2 * c));
          hi[b] = _mm256_or_si256(hi[b], bit4(2 * c + 1));
        }
      }
      const int64_t k = i * kQK_K + 64 * c;
      dot32_strided<T, 0>(lo, lane(sc, 2 * c), k, acc);
      dot32_strided<T, 1>(hi, lane(sc, 2 * c + 1), k + 32, acc);
    }
    min_term(mn, i, acc);
  }
}

// Q6_K (strided, scale factored out; no minimum, so its bound is the oracle's): in each half h
// (128 weights), weight 32p + l (p = 0..3) takes its low nibble from ql[l + 32(p & 1)] (low
// nibble for p < 2, high for p >= 2) and its top two bits from qh[l] >> 2p; scale
// d·scales[weight / 16]; value scale·(q − 32). Lanes 0..3 hold l < 16, lanes 4..7 l >= 16.
template <int T>
__attribute__((always_inline)) inline void row_q6_K(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const __m256i low4 = _mm256_set1_epi32(0xF), top2 = _mm256_set1_epi32(0x30), bias = _mm256_set1_epi32(32);
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const auto& b = reinterpret_cast<const quant::BlockQ6_K*>(row)[i];
    const __m256 d = _mm256_set1_ps(f16(b.d));
    for (int h = 0; h < 2; ++h) {
      // d·scales[8h .. 8h+7] (int8), one vector; group p uses scales 2p (lanes 0..3) and 2p+1.
      const __m256 sc = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                             _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.scales + 8 * h)))));
      const __m256i a = load32(b.ql + 64 * h), c = load32(b.ql + 64 * h + 32), hb = load32(b.qh + 32 * h);
      for (int p = 0; p < 4; ++p) {
        const __m256i src = (p & 1) ? c : a;
        __m256i q[4];
        for (int o = 0; o < 4; ++o) {
          const __m256i lo = _mm256_and_si256(_mm256_srli_epi32(src, 8 * o + 4 * (p >> 1)), low4);
          // Bits 8o+2p .. 8o+2p+1 of the qh lane moved straight to bits 4..5.
          const int shift = 8 * o + 2 * p - 4;
          const __m256i hi = _mm256_and_si256(shift >= 0 ? _mm256_srli_epi32(hb, shift) : _mm256_slli_epi32(hb, -shift), top2);
          q[o] = _mm256_sub_epi32(_mm256_or_si256(lo, hi), bias);
        }
        const __m256 scale = _mm256_permutevar8x32_ps(sc, _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1,
                                                                             2 * p + 1, 2 * p + 1, 2 * p + 1));
        if (p & 1) dot32_strided<T, 1>(q, scale, i * kQK_K + 128 * h + 32 * p, acc);
        else dot32_strided<T, 0>(q, scale, i * kQK_K + 128 * h + 32 * p, acc);
      }
    }
  }
}

}  // namespace temper::forward::detail::avx2
