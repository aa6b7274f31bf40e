// AVX2 versions of the hottest legacy reference quantizers (Q8_0, Q4_0 without imatrix). They
// give the same bytes as the scalar ports for all finite inputs: the max-abs search is order
// independent, every per-element float op is the same IEEE op, and integer packing truncates
// like ggml's casts. (NaN inputs are not reproduced; ggml's validation rejects them anyway.)
#pragma once
#if defined(__AVX2__)
#include <immintrin.h>

#include "quant/quant_common.h"

namespace temper::quant::simd {

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// C roundf (ties away from zero), exactly: x - trunc(x) is exact in binary floating point.
inline __m256 round_half_away(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
  const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
  return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

// Four vectors of int32 (low byte significant) -> 32 bytes in element order.
inline __m256i pack_low_bytes(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ff = _mm256_set1_epi32(0xFF);
  const __m256i ab = _mm256_packus_epi32(_mm256_and_si256(a, ff), _mm256_and_si256(b, ff));
  const __m256i cd = _mm256_packus_epi32(_mm256_and_si256(c, ff), _mm256_and_si256(d, ff));
  return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// quantize_row_q8_0_ref
inline void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    const float amax = hmax(_mm256_max_ps(_mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
                                          _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3]))));
    const float d = amax / 127.f;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_f16(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], vid)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), pack_low_bytes(q[0], q[1], q[2], q[3]));
  }
}

// quantize_row_q4_0_ref
inline void quantize_q4_0_plain(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    __m256 v[4], a[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      a[k] = abs_ps(v[k]);
    }
    const float amax = hmax(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
    float max = 0.0f;  // ggml keeps +0 when no |x| exceeds 0
    if (amax > 0) {
      const __m256 va = _mm256_set1_ps(amax);
      uint32_t mask = 0;
      for (int k = 0; k < 4; ++k)
        mask |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(a[k], va, _CMP_EQ_OQ))) << (8 * k);
      max = x[__builtin_ctz(mask)];  // first element reaching amax, as the scalar scan keeps
    }
    const float d = max / -8.f;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_f16(d);
    const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(8.5f);
    const __m256i fifteen = _mm256_set1_epi32(15);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256i t = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], vid), half));
      // (int8_t) cast keeps the sign-extended low byte, then MIN(15, .)
      q[k] = _mm256_min_epi32(_mm256_srai_epi32(_mm256_slli_epi32(t, 24), 24), fifteen);
    }
    const __m256i ff = _mm256_set1_epi32(0xFF);
    const __m256i c0 = _mm256_and_si256(_mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4)), ff);
    const __m256i c1 = _mm256_and_si256(_mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4)), ff);
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(c0, c1), 0xD8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs),
                     _mm_packus_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)));
  }
}

}  // namespace temper::quant::simd
#endif
