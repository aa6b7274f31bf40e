// Private to gemv_avx2.cpp (included under its AVX2 target pragma): row kernels for the
// 32-weight block types Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and the 256-weight IQ4_XS. Each block's
// 16 nibble bytes are loaded once and split in registers; weight j < 16 is the low nibble of
// qs[j], weight j + 16 the high nibble (ggml's layout). Q5's fifth bit of weight j is bit j of
// the 32-bit qh. The f32 operations per weight are those of quant/blocks_legacy.cpp and
// quant/blocks_iq4.cpp, so the weights are bit-identical to dequantize_row's.
#pragma once
#include <type_traits>

#include "forward/gemv_avx2_common.h"
#include "quant/quant_common.h"

namespace temper::forward::detail::avx2 {

// The fifth bits of weights k0 .. k0+7 of a Q5 block, as 0 or 16 per lane.
inline __m256i q5_high(__m256i qh, int k0) {
  const __m256i shifts = _mm256_add_epi32(_mm256_set1_epi32(k0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(qh, shifts), _mm256_set1_epi32(1)), 4);
}

// kind: 0 = Q4_0, 1 = Q4_1, 2 = Q5_0, 3 = Q5_1 (the block structs differ in d/m/qh fields).
template <int T, int kKind>
__attribute__((always_inline)) inline void row_legacy(const uint8_t* row, int64_t K, Acc<T>& acc) {
  using quant::kQK;
  constexpr bool kMin = kKind == 1 || kKind == 3, kFive = kKind >= 2;
  using Block = std::conditional_t<kKind == 0, quant::BlockQ4_0,
                std::conditional_t<kKind == 1, quant::BlockQ4_1,
                std::conditional_t<kKind == 2, quant::BlockQ5_0, quant::BlockQ5_1>>>;
  const auto* b = reinterpret_cast<const Block*>(row);
  // Without a minimum the stored value is offset: q − 8 (4 bits) or q − 16 (5 bits).
  const __m256i offset = _mm256_set1_epi32(kMin ? 0 : (kFive ? 16 : 8));
  for (int64_t i = 0; i < K / kQK; ++i) {
    const __m256 d = _mm256_set1_ps(f16(b[i].d));
    __m256 m = _mm256_setzero_ps();
    if constexpr (kMin) m = _mm256_set1_ps(f16(b[i].m));
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFive) {
      uint32_t h;
      __builtin_memcpy(&h, b[i].qh, 4);
      qh = _mm256_set1_epi32(int32_t(h));
    }
    __m128i lo, hi;
    nibbles16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs)), &lo, &hi);
    const auto w = [&](__m256i q, int k0) {
      if constexpr (kFive) q = _mm256_or_si256(q, q5_high(qh, k0));
      q = _mm256_sub_epi32(q, offset);
      if constexpr (kMin) return mul_add_q(q, d, m);
      else return mul_q(q, d);
    };
    const int64_t k = i * kQK;
    acc.add(w(lo8_u8(lo), 0), k, 0);
    acc.add(w(hi8_u8(lo), 8), k + 8, 1);
    acc.add(w(lo8_u8(hi), 16), k + 16, 0);
    acc.add(w(hi8_u8(hi), 24), k + 24, 1);
  }
}

// 32 IQ4 weights at k: codebook entries of the 16 nibble bytes qs, times dl.
template <int T>
__attribute__((always_inline)) inline void iq4_32(const uint8_t* qs, float dl, int64_t k, Acc<T>& acc) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(quant::kIQ4Values));
  const __m256 d = _mm256_set1_ps(dl);
  __m128i lo, hi;
  nibbles16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)), &lo, &hi);
  lo = _mm_shuffle_epi8(table, lo);
  hi = _mm_shuffle_epi8(table, hi);
  acc.add(mul_q(lo8_i8(lo), d), k, 0);
  acc.add(mul_q(hi8_i8(lo), d), k + 8, 1);
  acc.add(mul_q(lo8_i8(hi), d), k + 16, 0);
  acc.add(mul_q(hi8_i8(hi), d), k + 24, 1);
}

template <int T>
__attribute__((always_inline)) inline void row_iq4_nl(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* b = reinterpret_cast<const quant::BlockIQ4_NL*>(row);
  for (int64_t i = 0; i < K / quant::kQK; ++i) iq4_32(b[i].qs, f16(b[i].d), i * quant::kQK, acc);
}

// IQ4_XS: eight 32-weight sub-blocks per 256, each with a 6-bit scale ls (low 4 bits in
// scales_l, high 2 in scales_h), dl = d·(ls − 32).
template <int T>
__attribute__((always_inline)) inline void row_iq4_xs(const uint8_t* row, int64_t K, Acc<T>& acc) {
  const auto* b = reinterpret_cast<const quant::BlockIQ4_XS*>(row);
  for (int64_t i = 0; i < K / quant::kQK_K; ++i) {
    const float d = f16(b[i].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = ((b[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xF) | (((b[i].scales_h >> 2 * ib) & 3) << 4);
      iq4_32(b[i].qs + 16 * ib, d * float(ls - 32), i * quant::kQK_K + 32 * ib, acc);
    }
  }
}

}  // namespace temper::forward::detail::avx2
