// Private to the gemv_avx2*.{cpp,h} files: the accumulator and load helpers every AVX2 row
// kernel uses. Include only after `#pragma GCC target("avx2,fma,f16c")` (gemv_avx2.cpp does),
// so these inline functions get that target too.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace temper::forward::detail::avx2 {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// Bytes p[0..7] as eight unsigned 32-bit lanes.
inline __m256i load8_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// The 16 bytes of v split into nibbles: lo[j] = v[j] & 15, hi[j] = v[j] >> 4.
inline void nibbles16(__m128i v, __m128i* lo, __m128i* hi) {
  const __m128i m = _mm_set1_epi8(0xF);
  *lo = _mm_and_si128(v, m);
  *hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
}

// Bytes 0..7 or 8..15 of a 16-byte register as eight signed (epi8) or unsigned lanes.
inline __m256i lo8_i8(__m128i v) { return _mm256_cvtepi8_epi32(v); }
inline __m256i hi8_i8(__m128i v) { return _mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)); }
inline __m256i lo8_u8(__m128i v) { return _mm256_cvtepu8_epi32(v); }
inline __m256i hi8_u8(__m128i v) { return _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(v, v)); }

// Accumulators for T tokens (x rows K apart); two per token so consecutive FMAs do not wait on
// each other. T <= 8 keeps 2T accumulators plus the weights within the 16 ymm registers.
template <int T>
struct Acc {
  const float* x;
  int64_t K;
  const float* xsum32;  // (T, K/32) sums of x over 32-element sub-blocks, or null
  __m256 a[T][2];
  float tail[T] = {};
  Acc(const float* x_, int64_t K_, const float* xsum32_) : x(x_), K(K_), xsum32(xsum32_) {
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

// Small helpers that keep the dequantisation in the oracle's order: float(q)·d (one rounding),
// float(q)·d + m (two roundings, no fusion), d·float(q) − m.
inline __m256 mul_q(__m256i q, __m256 d) { return _mm256_mul_ps(_mm256_cvtepi32_ps(q), d); }
inline __m256 mul_add_q(__m256i q, __m256 d, __m256 m) { return _mm256_add_ps(mul_q(q, d), m); }
inline __m256 mul_sub_q(__m256i q, __m256 d, __m256 m) { return _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(q)), m); }

}  // namespace temper::forward::detail::avx2
