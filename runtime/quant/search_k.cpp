// Q4_K/Q5_K super-block search with the 8 sub-blocks of 32 side by side, one sub-block per AVX2
// lane: each lane runs ggml's make_qkx2/3_quants trial loop for its own sub-block in ggml's order
// (sums over the 32 values in index order, trials in order, min updated after each win), so the
// result is bit-identical. Rounding uses cvtps2dq, equal to nearest_int while |value| < 2^22; a
// per-trial bound check hands any super-block that could leave that range to the scalar search.
#include <algorithm>
#include <cmath>

#include "quant/quant_common.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace temper::quant {

#if defined(__AVX2__)
namespace {

// dst[8 * i + j] = src[32 * j + i]: element i of all 8 sub-blocks in one vector.
void transpose_8x32(const float* src, float* dst) {
  for (int c = 0; c < 4; ++c) {  // columns 8c..8c+7 of the 8 rows: an 8x8 transpose
    __m256 r[8], t[8];
    for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + 32 * j + 8 * c);
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
      t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; ++k) {
      const int a = 4 * k;
      r[a + 0] = _mm256_shuffle_ps(t[a + 0], t[a + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[a + 1] = _mm256_shuffle_ps(t[a + 0], t[a + 2], _MM_SHUFFLE(3, 2, 3, 2));
      r[a + 2] = _mm256_shuffle_ps(t[a + 1], t[a + 3], _MM_SHUFFLE(1, 0, 1, 0));
      r[a + 3] = _mm256_shuffle_ps(t[a + 1], t[a + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    // r[0..3]: elements (0,1,2,3 of the 128-bit halves) of rows 0-3; r[4..7] of rows 4-7.
    for (int k = 0; k < 4; ++k) {
      _mm256_storeu_ps(dst + 8 * (8 * c + k), _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
      _mm256_storeu_ps(dst + 8 * (8 * c + k + 4), _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
    }
  }
}

// clamp(nearest_int(v), 0, nmax) as a float; exact while |v| < 2^22 (checked by the caller).
inline __m256 round_clamp(__m256 v, __m256i vmax) {
  const __m256i l = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), _mm256_setzero_si256()), vmax);
  return _mm256_cvtepi32_ps(l);
}

// nearest_int on 8 lanes with ggml's bit trick (exact for every input, wrapping included).
inline __m256i nearest_int8x(__m256 v) {
  const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
  return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

// 32 int32 values in 0..255 (four vectors, in order) to 32 bytes.
inline void store_bytes32(const __m256i* l, uint8_t* out) {
  const __m256i ab = _mm256_packs_epi32(l[0], l[1]), cd = _mm256_packs_epi32(l[2], l[3]);
  const __m256i bytes = _mm256_packus_epi16(ab, cd);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// Lanes where isc * (x - m) may leave (-2^21, 2^21) for some x in [xmin, xmax] (isc >= 0, and
// the rounded products are monotonic in x), or is NaN.
inline __m256 unsafe_lanes(__m256 isc, __m256 m, __m256 xmin, __m256 xmax) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lim = _mm256_set1_ps(2097152.f);
  const __m256 a = _mm256_and_ps(_mm256_mul_ps(isc, _mm256_sub_ps(xmax, m)), abs_mask);
  const __m256 b = _mm256_and_ps(_mm256_mul_ps(isc, _mm256_sub_ps(xmin, m)), abs_mask);
  const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(a, lim, _CMP_LT_OQ), _mm256_cmp_ps(b, lim, _CMP_LT_OQ));
  return _mm256_andnot_ps(ok, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
}

// S consecutive super-blocks in S independent streams, interleaved so that the sequential sums of
// one stream overlap the other's (the loops are bound by add latency). Bit s of the result is set
// when super-block s was searched here.
template <int S>
unsigned search_streams(const float* x, const float* qw, int nmax, float rmin, float rdelta, int nstep,
                        float* scales, float* mins, float* sw, uint8_t* L) {
  alignas(32) float xt[S][kQK_K], wt[S][kQK_K], lbuf[S][kQK_K];
  const __m256 zero = _mm256_setzero_ps();
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i vnmax = _mm256_set1_epi32(nmax);
  for (int s = 0; s < S; ++s) {
    const float* xs = x + kQK_K * s;
    transpose_8x32(xs, xt[s]);
    if (!qw) {  // quantize_row_q*_K_ref: w = sqrt(Σx²/32) + |x|
      __m256 s2 = zero;
      for (int i = 0; i < 32; ++i) {
        const __m256 X = _mm256_load_ps(xt[s] + 8 * i);
        s2 = _mm256_add_ps(s2, _mm256_mul_ps(X, X));
      }
      const __m256 av = _mm256_sqrt_ps(_mm256_div_ps(s2, _mm256_set1_ps(32.f)));
      for (int i = 0; i < 32; ++i)
        _mm256_store_ps(wt[s] + 8 * i, _mm256_add_ps(av, _mm256_and_ps(_mm256_load_ps(xt[s] + 8 * i), abs_mask)));
    } else {  // quantize_row_q*_K_impl: w = qw * sqrt(sigma2 + x²), sw = Σw
      const float* qs = qw + kQK_K * s;
      const __m256 sigma2 = _mm256_set1_ps(2 * sum_squares(xs, kQK_K) / float(kQK_K));
      alignas(32) float wn[kQK_K];
      for (int e = 0; e < kQK_K; e += 8) {
        const __m256 X = _mm256_loadu_ps(xs + e);
        _mm256_store_ps(wn + e, _mm256_mul_ps(_mm256_loadu_ps(qs + e), _mm256_sqrt_ps(_mm256_add_ps(sigma2, _mm256_mul_ps(X, X)))));
      }
      transpose_8x32(wn, wt[s]);
      __m256 sum = zero;
      for (int i = 0; i < 32; ++i) sum = _mm256_add_ps(sum, _mm256_load_ps(wt[s] + 8 * i));
      _mm256_storeu_ps(sw + 8 * s, sum);
    }
  }
  // make_qkx2_quants (no imatrix) / make_qkx3_quants (imatrix) prologue.
  __m256 xmin[S], xmax[S], sum_w[S], sum_x[S], unsafe[S], min0[S], degenerate[S];
  __m256 iscale0[S], scale[S], min[S], chosen_isc[S], chosen_min[S], best[S];
  for (int s = 0; s < S; ++s) {
    xmin[s] = xmax[s] = _mm256_load_ps(xt[s]);
    sum_w[s] = _mm256_load_ps(wt[s]);
    sum_x[s] = _mm256_mul_ps(sum_w[s], xmin[s]);
    unsafe[s] = _mm256_cmp_ps(xmin[s], xmin[s], _CMP_UNORD_Q);  // NaN payloads round differently
    for (int i = 1; i < 32; ++i) {
      const __m256 X = _mm256_load_ps(xt[s] + 8 * i), W = _mm256_load_ps(wt[s] + 8 * i);
      unsafe[s] = _mm256_or_ps(unsafe[s], _mm256_cmp_ps(X, X, _CMP_UNORD_Q));
      xmin[s] = _mm256_min_ps(X, xmin[s]);  // X < min ? X : min, as ggml's if
      xmax[s] = _mm256_max_ps(X, xmax[s]);
      sum_w[s] = _mm256_add_ps(sum_w[s], W);
      sum_x[s] = _mm256_add_ps(sum_x[s], _mm256_mul_ps(W, X));
    }
    min0[s] = _mm256_blendv_ps(xmin[s], zero, _mm256_cmp_ps(xmin[s], zero, _CMP_GT_OQ));
    degenerate[s] = qw ? _mm256_cmp_ps(xmax[s], min0[s], _CMP_LE_OQ) : _mm256_cmp_ps(xmax[s], min0[s], _CMP_EQ_OQ);
    iscale0[s] = _mm256_div_ps(_mm256_set1_ps(float(nmax)), _mm256_sub_ps(xmax[s], min0[s]));
    scale[s] = _mm256_div_ps(_mm256_set1_ps(1.f), iscale0[s]);
    min[s] = chosen_min[s] = min0[s];
    chosen_isc[s] = iscale0[s];
    unsafe[s] = _mm256_or_ps(unsafe[s], unsafe_lanes(iscale0[s], min0[s], xmin[s], xmax[s]));
    best[s] = zero;
  }
  for (int i = 0; i < 32; ++i) {
    for (int s = 0; s < S; ++s) {
      const __m256 X = _mm256_load_ps(xt[s] + 8 * i), W = _mm256_load_ps(wt[s] + 8 * i);
      const __m256 lf = round_clamp(_mm256_mul_ps(iscale0[s], _mm256_sub_ps(X, min0[s])), vnmax);
      const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale[s], lf), min0[s]), X);
      best[s] = _mm256_add_ps(best[s], _mm256_mul_ps(W, _mm256_mul_ps(diff, diff)));
    }
  }
  for (int is = 0; is <= nstep; ++is) {
    const __m256 num = _mm256_set1_ps(rmin + rdelta * float(is) + float(nmax));
    __m256 isc[S], s_l[S], s_l2[S], s_xl[S], this_scale[S], this_min[S], D[S], err[S];
    for (int s = 0; s < S; ++s) {
      // ggml divides by max - min with the current (possibly updated) min.
      isc[s] = _mm256_div_ps(num, _mm256_sub_ps(xmax[s], min[s]));
      unsafe[s] = _mm256_or_ps(unsafe[s], unsafe_lanes(isc[s], min[s], xmin[s], xmax[s]));
      s_l[s] = s_l2[s] = s_xl[s] = err[s] = zero;
    }
    for (int i = 0; i < 32; ++i) {
      for (int s = 0; s < S; ++s) {
        const __m256 X = _mm256_load_ps(xt[s] + 8 * i), W = _mm256_load_ps(wt[s] + 8 * i);
        const __m256 lf = round_clamp(_mm256_mul_ps(isc[s], _mm256_sub_ps(X, min[s])), vnmax);
        _mm256_store_ps(lbuf[s] + 8 * i, lf);
        const __m256 wl = _mm256_mul_ps(W, lf);
        s_l[s] = _mm256_add_ps(s_l[s], wl);
        s_l2[s] = _mm256_add_ps(s_l2[s], _mm256_mul_ps(wl, lf));
        s_xl[s] = _mm256_add_ps(s_xl[s], _mm256_mul_ps(wl, X));
      }
    }
    for (int s = 0; s < S; ++s) {
      D[s] = _mm256_sub_ps(_mm256_mul_ps(sum_w[s], s_l2[s]), _mm256_mul_ps(s_l[s], s_l[s]));
      this_scale[s] = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w[s], s_xl[s]), _mm256_mul_ps(sum_x[s], s_l[s])), D[s]);
      this_min[s] = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(s_l2[s], sum_x[s]), _mm256_mul_ps(s_l[s], s_xl[s])), D[s]);
      const __m256 pos = _mm256_cmp_ps(this_min[s], zero, _CMP_GT_OQ);
      this_scale[s] = _mm256_blendv_ps(this_scale[s], _mm256_div_ps(s_xl[s], s_l2[s]), pos);
      this_min[s] = _mm256_blendv_ps(this_min[s], zero, pos);
    }
    for (int i = 0; i < 32; ++i) {
      for (int s = 0; s < S; ++s) {
        const __m256 X = _mm256_load_ps(xt[s] + 8 * i), W = _mm256_load_ps(wt[s] + 8 * i);
        const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale[s], _mm256_load_ps(lbuf[s] + 8 * i)), this_min[s]), X);
        err[s] = _mm256_add_ps(err[s], _mm256_mul_ps(W, _mm256_mul_ps(diff, diff)));
      }
    }
    for (int s = 0; s < S; ++s) {
      const __m256 win = _mm256_and_ps(_mm256_cmp_ps(D[s], zero, _CMP_GT_OQ), _mm256_cmp_ps(err[s], best[s], _CMP_LT_OQ));
      best[s] = _mm256_blendv_ps(best[s], err[s], win);
      scale[s] = _mm256_blendv_ps(scale[s], this_scale[s], win);
      chosen_isc[s] = _mm256_blendv_ps(chosen_isc[s], isc[s], win);
      chosen_min[s] = _mm256_blendv_ps(chosen_min[s], min[s], win);
      min[s] = _mm256_blendv_ps(min[s], this_min[s], win);
    }
  }
  unsigned done = 0;
  for (int s = 0; s < S; ++s) {
    if (_mm256_movemask_ps(_mm256_andnot_ps(degenerate[s], unsafe[s]))) continue;
    done |= 1u << s;
    _mm256_storeu_ps(scales + 8 * s, _mm256_blendv_ps(scale[s], zero, degenerate[s]));
    _mm256_storeu_ps(mins + 8 * s, _mm256_xor_ps(_mm256_blendv_ps(min[s], min0[s], degenerate[s]), _mm256_set1_ps(-0.f)));
    // L of the winning trial (or of the first estimate), recomputed in natural order.
    alignas(32) float cisc[8], cmin[8];
    _mm256_store_ps(cisc, chosen_isc[s]);
    _mm256_store_ps(cmin, chosen_min[s]);
    const int degen_bits = _mm256_movemask_ps(degenerate[s]);
    for (int j = 0; j < 8; ++j) {
      uint8_t* Lj = L + kQK_K * s + 32 * j;
      if (degen_bits >> j & 1) {
        std::fill(Lj, Lj + 32, uint8_t(0));
        continue;
      }
      const __m256 vi = _mm256_set1_ps(cisc[j]), vm = _mm256_set1_ps(cmin[j]);
      const float* xj = x + kQK_K * s + 32 * j;
      __m256i l[4];
      for (int k = 0; k < 4; ++k)
        l[k] = _mm256_cvtps_epi32(round_clamp(_mm256_mul_ps(vi, _mm256_sub_ps(_mm256_loadu_ps(xj + 8 * k), vm)), vnmax));
      store_bytes32(l, Lj);
    }
  }
  return done;
}

}  // namespace

unsigned k4_search8(int nblocks, const float* x, const float* qw, int nmax, float rmin, float rdelta, int nstep,
                    float* scales, float* mins, float* sw, uint8_t* L) {
  if (nblocks >= 2) return search_streams<2>(x, qw, nmax, rmin, rdelta, nstep, scales, mins, sw, L);
  return search_streams<1>(x, qw, nmax, rmin, rdelta, nstep, scales, mins, sw, L);
}

void k4_requantize32(const float* x, float d, float dm, int nmax, uint8_t* L) {
  const __m256 vd = _mm256_set1_ps(d), vdm = _mm256_set1_ps(dm);
  __m256i l[4];
  for (int k = 0; k < 4; ++k) {
    const __m256i q = nearest_int8x(_mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(x + 8 * k), vdm), vd));
    l[k] = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(nmax));
  }
  store_bytes32(l, L);
}

#else  // portable build: the callers use the per-sub-block searches

unsigned k4_search8(int, const float*, const float*, int, float, float, int, float*, float*, float*, uint8_t*) { return 0; }

void k4_requantize32(const float* x, float d, float dm, int nmax, uint8_t* L) {
  for (int i = 0; i < 32; ++i) L[i] = uint8_t(std::max(0, std::min(nmax, nearest_int((x[i] + dm) / d))));
}

#endif

}  // namespace temper::quant
