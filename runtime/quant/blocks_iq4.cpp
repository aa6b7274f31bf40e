// IQ4_NL (32-element blocks, non-linear 4-bit codebook) and IQ4_XS (256-element super-blocks with
// 6-bit sub-block scales). Both go through ggml's quantize_row_iq4_nl_impl with ntry = 7, with or
// without an imatrix (ggml quantize_iq4_nl, quantize_iq4_xs). Ported from ggml-quants.c.
#include <algorithm>
#include <cmath>

#include "quant/quant_common.h"

namespace temper::quant {
namespace {

constexpr int kNtry = 7;

// Best scale for one 32-block: start at d0 = -max/values[0], then try the 2*ntry+1 inverse scales
// (itry + values[0])/max, keeping the largest (Σwqx)²/Σwq². Writes L; returns 0 for an
// all-zero block (L untouched, as in ggml).
float iq4_block_scale(const float* xb, const float* w, uint8_t* L, bool fast) {
  const int8_t* values = kIQ4Values;
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(xb[j]);
    if (ax > amax) { amax = ax; max = xb[j]; }
  }
  if (amax < kGroupMaxEps) return 0;
  float d = -max / float(values[0]);
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    const int l = best_index_int8(16, values, id * xb[j]);
    L[j] = uint8_t(l);
    const float q = values[l];
    sumqx += w[j] * q * xb[j];
    sumq2 += w[j] * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  float tqx[16], tq2[16];  // per trial Σwqx, Σwq², computed in SIMD lanes when fast
  if (fast) iq4_trials_fast(xb, w, max, kNtry, tqx, tq2);
  for (int itry = -kNtry; itry <= kNtry; ++itry) {
    if (fast) {
      sumqx = tqx[itry + kNtry];
      sumq2 = tq2[itry + kNtry];
    } else {
      id = float(itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < 32; ++j) {
        const float q = values[best_index_int8(16, values, id * xb[j])];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
      }
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Block weights: imatrix * sqrt(sigma2 + x^2) with sigma2 = 2*Σx²/super_block, else x^2.
void iq4_weights(const float* xb, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < 32; ++j) w[j] = qw ? qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
}

inline float iq4_sigma2(const float* x, int n) {
  float s = sum_squares(x, n);
  s *= 2.f / float(n);  // sigma2 *= 2.f/super_block_size
  return s;
}

inline void pack_nibbles(const uint8_t* L, uint8_t* q4) {
  for (int j = 0; j < 16; ++j) q4[j] = uint8_t(L[j] | (L[16 + j] << 4));
}

}  // namespace

// ---- IQ4_NL

static void iq4_nl_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockIQ4_NL*>(vy);
  uint8_t L[32];
  float w[32];
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    const float sigma2 = iq4_sigma2(x, kQK);
    iq4_weights(x, imatrix ? imatrix + kQK * ib : nullptr, sigma2, w);
    const float d = iq4_block_scale(x, w, L, s.fast);
    y[ib].d = to_f16(d);
    const float id = d ? 1 / d : 0;
    for (int j = 0; j < 32; ++j) L[j] = uint8_t(best_index_int8(16, kIQ4Values, id * x[j]));
    pack_nibbles(L, y[ib].qs);
  }
}

void quantize_iq4_nl_ref(const float* x, void* y, int64_t n, const float* imatrix) { iq4_nl_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_iq4_nl(const float* x, void* y, int64_t n, const float* imatrix) { iq4_nl_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_iq4_nl(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_NL*>(vx);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = from_f16(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(kIQ4Values[x[i].qs[j] & 0xF]);
      y[j + 16] = d * float(kIQ4Values[x[i].qs[j] >> 4]);
    }
  }
}

// ---- IQ4_XS

static void iq4_xs_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockIQ4_XS*>(vy);
  uint8_t L[kQK_K];
  float w[32], scales[8];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    const float sigma2 = iq4_sigma2(x, kQK_K);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < 8; ++ib) {
      iq4_weights(x + 32 * ib, imatrix ? imatrix + kQK_K * i + 32 * ib : nullptr, sigma2, w);
      scales[ib] = iq4_block_scale(x + 32 * ib, w, L + 32 * ib, s.fast);
      if (std::fabs(scales[ib]) > amax_scale) { amax_scale = std::fabs(scales[ib]); max_scale = scales[ib]; }
    }
    // One fp16 super-scale, 6-bit signed sub-scales, then re-assign every index.
    const float d = -max_scale / 32;
    y[i].d = to_f16(d);
    const float id = d ? 1 / d : 0.f;
    y[i].scales_h = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const int l = std::max(-32, std::min(31, nearest_int(id * scales[ib])));
      const float dl = d * float(l);
      const float idl = dl ? 1 / dl : 0.f;
      for (int j = 0; j < 32; ++j) L[32 * ib + j] = uint8_t(best_index_int8(16, kIQ4Values, idl * x[32 * ib + j]));
      const int lb = l + 32;
      if (ib % 2 == 0) y[i].scales_l[ib / 2] = uint8_t(lb & 0xF);
      else y[i].scales_l[ib / 2] |= uint8_t((lb & 0xF) << 4);
      y[i].scales_h = uint16_t(y[i].scales_h | ((lb >> 4) << (2 * ib)));
    }
    for (int ib = 0; ib < 8; ++ib) pack_nibbles(L + 32 * ib, y[i].qs + 16 * ib);
  }
}

void quantize_iq4_xs_ref(const float* x, void* y, int64_t n, const float* imatrix) { iq4_xs_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_iq4_xs(const float* x, void* y, int64_t n, const float* imatrix) { iq4_xs_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_iq4_xs(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_XS*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = from_f16(x[i].d);
    for (int ib = 0; ib < 8; ++ib, y += 32) {
      const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xF) | (((x[i].scales_h >> 2 * ib) & 3) << 4);
      const float dl = d * float(ls - 32);
      const uint8_t* qs = x[i].qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * float(kIQ4Values[qs[j] & 0xF]);
        y[j + 16] = dl * float(kIQ4Values[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace temper::quant
