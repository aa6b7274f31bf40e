// Vectorised scale searches: the candidate scales ("trials") of make_qx_quants, make_qkx_quants
// and the IQ4 search run side by side, one trial per AVX2 lane. Each lane performs exactly the
// scalar sequence of IEEE operations for its trial (same accumulation order over the elements),
// and the winner is then picked by the scalar rule in the scalar order, so the results are
// bit-identical to quant_common.cpp. Without AVX2 these forward to the scalar functions.
#include <algorithm>
#include <cmath>

#include "quant/quant_common.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace temper::quant {

#if defined(__AVX2__)
namespace {

inline __m256i nearest_int8x(__m256 v) {  // nearest_int on 8 lanes
  const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
  return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

inline __m256i clamp8x(__m256i v, int lo, int hi) {
  return _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}

constexpr int kMaxN = 32;  // sub-block sizes used with the searches: 16 or 32

}  // namespace

float make_qx_quants_fast(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
  if (rmse_type != 1 || n > kMaxN) return make_qx_quants(n, nmax, x, L, rmse_type, qw);
  const float max = signed_absmax(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  float w[kMaxN], wx[kMaxN];
  for (int i = 0; i < n; ++i) {
    w[i] = qw ? qw[i] : x[i] * x[i];
    wx[i] = w[i] * x[i];
  }
  // Trial 0 (iscale = -nmax/max) as in the scalar code; it also sets L.
  const float iscale0 = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale0 * x[i])));
    L[i] = int8_t(l + nmax);
    sumlx += wx[i] * float(l);
    suml2 += w[i] * float(l) * float(l);
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  // The 18 further trials is = -9..-1, 1..9 in lanes (24 lanes, the last 6 unused).
  alignas(32) float isc[24], slx[24], sl2[24];
  for (int k = 0; k < 24; ++k) {
    const int is = k < 9 ? k - 9 : std::min(k - 8, 9);
    isc[k] = -(float(nmax) + 0.1f * float(is)) / max;
  }
  for (int b = 0; b < 24; b += 8) {
    const __m256 vis = _mm256_load_ps(isc + b);
    __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256 lf = _mm256_cvtepi32_ps(clamp8x(nearest_int8x(_mm256_mul_ps(vis, _mm256_set1_ps(x[i]))), -nmax, nmax - 1));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_set1_ps(wx[i]), lf));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(w[i]), lf), lf));
    }
    _mm256_store_ps(slx + b, a1);
    _mm256_store_ps(sl2 + b, a2);
  }
  int chosen = -1;
  for (int k = 0; k < 18; ++k) {
    if (sl2[k] > 0 && slx[k] * slx[k] > best * sl2[k]) {
      scale = slx[k] / sl2[k];
      best = scale * slx[k];
      chosen = k;
    }
  }
  if (chosen >= 0)
    for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, nearest_int(isc[chosen] * x[i]))));
  return scale;
}

float make_qkx_quants_fast(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                           float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                           bool use_mad, bool qkx3) {
  if (n > kMaxN || nstep < 1 || nstep > 39)  // arrays below hold 48 lanes
    return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, qkx3);
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (qkx3 ? max <= min : max == min) {
    std::fill(L, L + n, uint8_t(0));
    *the_min = -min;
    return 0.f;
  }
  const float iscale0 = float(nmax) / (max - min);
  float scale = 1 / iscale0;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(std::max(0, std::min(nmax, nearest_int(iscale0 * (x[i] - min)))));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  // ggml updates `min` when a trial wins, and later trials quantize x - min with the new min.
  // So lanes are evaluated speculatively with the current min; after a win that changes min the
  // remaining trials are evaluated again.
  const int ntrial = nstep + 1;
  alignas(32) float isc[48], dd[48], sc[48], mn[48], err[48];
  float xm[kMaxN];
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int chosen = -1;
  float chosen_isc = 0, chosen_min = 0;
  for (int start = 0; start < ntrial;) {
    for (int k = start; k < start + 40 && k < 48; ++k)
      isc[k] = (rmin + rdelta * float(std::min(k, nstep)) + float(nmax)) / (max - min);
    for (int i = 0; i < n; ++i) xm[i] = x[i] - min;
    for (int b = start; b < ntrial; b += 8) {
      const __m256 vis = _mm256_loadu_ps(isc + b);
      __m256 s_l = _mm256_setzero_ps(), s_l2 = _mm256_setzero_ps(), s_xl = _mm256_setzero_ps();
      for (int i = 0; i < n; ++i) {
        const __m256 lf = _mm256_cvtepi32_ps(clamp8x(nearest_int8x(_mm256_mul_ps(vis, _mm256_set1_ps(xm[i]))), 0, nmax));
        const __m256 wl = _mm256_mul_ps(_mm256_set1_ps(weights[i]), lf);
        s_l = _mm256_add_ps(s_l, wl);
        s_l2 = _mm256_add_ps(s_l2, _mm256_mul_ps(wl, lf));
        s_xl = _mm256_add_ps(s_xl, _mm256_mul_ps(wl, _mm256_set1_ps(x[i])));
      }
      const __m256 vw = _mm256_set1_ps(sum_w), vx = _mm256_set1_ps(sum_x);
      const __m256 D = _mm256_sub_ps(_mm256_mul_ps(vw, s_l2), _mm256_mul_ps(s_l, s_l));
      __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(vw, s_xl), _mm256_mul_ps(vx, s_l)), D);
      __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(s_l2, vx), _mm256_mul_ps(s_l, s_xl)), D);
      const __m256 pos = _mm256_cmp_ps(this_min, _mm256_setzero_ps(), _CMP_GT_OQ);
      this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(s_xl, s_l2), pos);
      this_min = _mm256_blendv_ps(this_min, _mm256_setzero_ps(), pos);
      __m256 e = _mm256_setzero_ps();
      for (int i = 0; i < n; ++i) {
        const __m256 lf = _mm256_cvtepi32_ps(clamp8x(nearest_int8x(_mm256_mul_ps(vis, _mm256_set1_ps(xm[i]))), 0, nmax));
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, lf), this_min), _mm256_set1_ps(x[i]));
        diff = use_mad ? _mm256_and_ps(diff, abs_mask) : _mm256_mul_ps(diff, diff);
        e = _mm256_add_ps(e, _mm256_mul_ps(_mm256_set1_ps(weights[i]), diff));
      }
      _mm256_storeu_ps(dd + b, D);
      _mm256_storeu_ps(sc + b, this_scale);
      _mm256_storeu_ps(mn + b, this_min);
      _mm256_storeu_ps(err + b, e);
    }
    int next = ntrial;
    for (int k = start; k < ntrial; ++k) {
      if (dd[k] > 0 && err[k] < best_error) {
        best_error = err[k];
        scale = sc[k];
        chosen = k;
        chosen_isc = isc[k];
        chosen_min = min;  // the min this trial quantized with
        const bool min_changed = !(mn[k] == min);
        min = mn[k];
        if (min_changed) {
          next = k + 1;
          break;
        }
      }
    }
    start = next;
  }
  if (chosen >= 0)
    for (int i = 0; i < n; ++i)
      L[i] = uint8_t(std::max(0, std::min(nmax, nearest_int(chosen_isc * (x[i] - chosen_min)))));
  *the_min = -min;
  return scale;
}

void iq4_trials_fast(const float* xb, const float* w, float max, int ntry, float* sumqx, float* sumq2) {
  alignas(32) float lo_tab[8], hi_tab[8], ids[16];
  for (int k = 0; k < 8; ++k) {
    lo_tab[k] = kIQ4Values[k];
    hi_tab[k] = kIQ4Values[k + 8];
  }
  const int ntrial = 2 * ntry + 1;  // <= 16
  for (int k = 0; k < 16; ++k) ids[k] = float(std::min(k, ntrial - 1) - ntry + kIQ4Values[0]) / max;
  const __m256 vlo = _mm256_load_ps(lo_tab), vhi = _mm256_load_ps(hi_tab);
  const __m256i seven = _mm256_set1_epi32(7), fifteen = _mm256_set1_epi32(15), one = _mm256_set1_epi32(1);
  auto lookup = [&](__m256i idx) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(vlo, idx), _mm256_permutevar8x32_ps(vhi, idx),
                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, seven)));
  };
  const __m256 v0 = _mm256_set1_ps(kIQ4Values[0]);
  for (int b = 0; b < ntrial; b += 8) {
    const __m256 vid = _mm256_load_ps(ids + b);
    __m256 sqx = _mm256_setzero_ps(), sq2 = _mm256_setzero_ps();
    for (int j = 0; j < 32; ++j) {
      const __m256 al = _mm256_mul_ps(vid, _mm256_set1_ps(xb[j]));
      // best_index_int8: lo = largest index with value <= al (branchless binary search) ...
      __m256i lo = _mm256_setzero_si256();
      for (int step = 8; step >= 1; step /= 2) {
        const __m256i cand = _mm256_add_epi32(lo, _mm256_set1_epi32(step));
        const __m256 le = _mm256_cmp_ps(lookup(cand), al, _CMP_LE_OQ);
        lo = _mm256_blendv_epi8(lo, cand, _mm256_castps_si256(le));
      }
      // ... then the nearer of values[lo], values[lo+1] (ties up); 0 below values[0], 15 at the top.
      const __m256i hi = _mm256_min_epi32(_mm256_add_epi32(lo, one), fifteen);
      const __m256 pick_lo = _mm256_cmp_ps(_mm256_sub_ps(al, lookup(lo)), _mm256_sub_ps(lookup(hi), al), _CMP_LT_OQ);
      __m256i idx = _mm256_blendv_epi8(hi, lo, _mm256_castps_si256(pick_lo));
      idx = _mm256_blendv_epi8(idx, fifteen, _mm256_cmpeq_epi32(lo, fifteen));
      idx = _mm256_andnot_si256(_mm256_castps_si256(_mm256_cmp_ps(al, v0, _CMP_LE_OQ)), idx);
      const __m256 q = lookup(idx);
      const __m256 wq = _mm256_mul_ps(_mm256_set1_ps(w[j]), q);
      sqx = _mm256_add_ps(sqx, _mm256_mul_ps(wq, _mm256_set1_ps(xb[j])));
      sq2 = _mm256_add_ps(sq2, _mm256_mul_ps(wq, q));
    }
    _mm256_storeu_ps(sumqx + b, sqx);
    _mm256_storeu_ps(sumq2 + b, sq2);
  }
}

#else  // portable build: the scalar searches

float make_qx_quants_fast(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
  return make_qx_quants(n, nmax, x, L, rmse_type, qw);
}
float make_qkx_quants_fast(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                           float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                           bool use_mad, bool qkx3) {
  return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, qkx3);
}
void iq4_trials_fast(const float* xb, const float* w, float max, int ntry, float* sumqx, float* sumq2) {
  for (int t = 0; t < 2 * ntry + 1; ++t) {
    const float id = float(t - ntry + kIQ4Values[0]) / max;
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = kIQ4Values[best_index_int8(16, kIQ4Values, id * xb[j])];
      sqx += w[j] * q * xb[j];
      sq2 += w[j] * q * q;
    }
    sumqx[t] = sqx;
    sumq2[t] = sq2;
  }
}

#endif

}  // namespace temper::quant
