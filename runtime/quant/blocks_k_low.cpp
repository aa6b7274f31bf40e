// Q2_K and Q3_K (256-element super-blocks of 16 sub-blocks of 16). Without an imatrix ggml runs
// quantize_row_q{2,3}_K_ref, with one quantize_row_q{2,3}_K_impl. Ported from ggml-quants.c.
#include <algorithm>
#include <cmath>

#include "quant/quant_common.h"

namespace temper::quant {
namespace {

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// 2-bit packing shared by Q2_K and Q3_K: byte 32h+l holds elements 128h+l+32s in bits 2s..2s+1.
template <typename Q>
void pack_2bit(const Q* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q2_K tail shared by ref and impl: requantize with the stored fp16 d/dmin and 4-bit scales.
void q2_K_requantize_and_pack(const float* x, BlockQ2_K& y, uint8_t* L) {
  const float dall = from_f16(y.d), mall = from_f16(y.dmin);
  for (int j = 0; j < 16; ++j) {
    const float d = dall * float(y.scales[j] & 0xF);
    if (!d) continue;
    const float m = mall * float(y.scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = uint8_t(clamp_int(nearest_int((x[16 * j + ii] + m) / d), 0, 3));
  }
  pack_2bit(L, y.qs);
}

// 6-bit Q3_K scale j (stored biased by 32), as both quantizers read it back.
inline int8_t q3_K_scale(const uint8_t* s, int j) {
  const int8_t lo = int8_t(j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4));
  return int8_t((lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
}

inline void q3_K_put_scale(uint8_t* s, int j, int l) {  // l in [0, 63]
  if (j < 8) s[j] = uint8_t(l & 0xF);
  else s[j - 8] |= uint8_t((l & 0xF) << 4);
  s[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
}

// Q3_K tail shared by ref and impl: requantize to [0,7], split off the high bit into hmask.
void q3_K_requantize_and_pack(const float* x, BlockQ3_K& y, int8_t* L) {
  const float dall = from_f16(y.d);
  for (int j = 0; j < 16; ++j) {
    const float d = dall * float(q3_K_scale(y.scales, j));
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = int8_t(clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
  }
  std::memset(y.hmask, 0, sizeof y.hmask);
  int m = 0;
  uint8_t hm = 1;
  for (int j = 0; j < kQK_K; ++j) {
    if (L[j] > 3) {
      y.hmask[m] |= hm;
      L[j] = int8_t(L[j] - 4);
    }
    if (++m == 32) { m = 0; hm = uint8_t(hm << 1); }
  }
  pack_2bit(L, y.qs);
}

}  // namespace

// ---- Q2_K

static void q2_K_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ2_K*>(vy);
  uint8_t L[kQK_K], Laux[16];
  float w[16], mins[16], scales[16];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    if (!imatrix) {  // quantize_row_q2_K_ref
      float max_scale = 0, max_min = 0;
      for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
        scales[j] = s.qkx(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
      }
      if (max_scale > 0) {
        const float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; ++j) y[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
        y[i].d = to_f16(max_scale / 15.f);
      } else {
        std::memset(y[i].scales, 0, 16);
        y[i].d = to_f16(0.f);
      }
      if (max_min > 0) {
        const float iscale = 15.f / max_min;
        for (int j = 0; j < 16; ++j) y[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
        y[i].dmin = to_f16(max_min / 15.f);
      } else {
        y[i].dmin = to_f16(0.f);
      }
    } else {  // quantize_row_q2_K_impl
      const float* qw = imatrix + kQK_K * i;
      const float sigma2 = sum_squares(x, kQK_K) / float(kQK_K);
      float sw[16];
      uint8_t Ls[16], Lm[16];
      for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) w[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
        sw[j] = 0;
        for (int l = 0; l < 16; ++l) sw[j] += w[l];
        scales[j] = s.qkx(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, true);
      }
      y[i].d = to_f16(make_qp_quants(16, 15, scales, Ls, sw));
      y[i].dmin = to_f16(make_qp_quants(16, 15, mins, Lm, sw));
      for (int j = 0; j < 16; ++j) y[i].scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
    }
    q2_K_requantize_and_pack(x, y[i], L);
  }
}

void quantize_q2_K_ref(const float* x, void* y, int64_t n, const float* imatrix) { q2_K_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q2_K(const float* x, void* y, int64_t n, const float* imatrix) { q2_K_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q2_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ2_K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d = from_f16(x[i].d), dmin = from_f16(x[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = x[i].scales[e / 16];
      const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
      const int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      y[e] = dl * float(q) - ml;
    }
  }
}

// ---- Q3_K

static void q3_K_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ3_K*>(vy);
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    std::memset(y[i].scales, 0, 12);
    if (!imatrix) {  // quantize_row_q3_K_ref
      float max_scale = 0, amax = 0;
      for (int j = 0; j < 16; ++j) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
        if (std::fabs(scales[j]) > amax) { amax = std::fabs(scales[j]); max_scale = scales[j]; }
      }
      if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; ++j) {
          const int8_t l = int8_t(nearest_int(iscale * scales[j]));
          q3_K_put_scale(y[i].scales, j, int8_t(std::max<int>(-32, std::min<int>(31, l)) + 32));
        }
        y[i].d = to_f16(1 / iscale);
      } else {
        y[i].d = to_f16(0.f);
      }
    } else {  // quantize_row_q3_K_impl
      const float* qw = imatrix + kQK_K * i;
      const float sigma2 = 2 * sum_squares(x, kQK_K) / float(kQK_K);
      float w[16], sw[16];
      int8_t Ls[16];
      for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) w[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 16; ++l) sumw += w[l];
        sw[j] = sumw;
        scales[j] = s.qx(16, 4, x + 16 * j, L + 16 * j, 1, w);
      }
      const float d_block = s.qx(16, 32, scales, Ls, 1, sw);
      for (int j = 0; j < 16; ++j) q3_K_put_scale(y[i].scales, j, Ls[j]);
      y[i].d = to_f16(d_block);
    }
    q3_K_requantize_and_pack(x, y[i], L);
  }
}

void quantize_q3_K_ref(const float* x, void* y, int64_t n, const float* imatrix) { q3_K_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q3_K(const float* x, void* y, int64_t n, const float* imatrix) { q3_K_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q3_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ3_K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d_all = from_f16(x[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d_all * float(q3_K_scale(x[i].scales, e / 16));
      const int shift = 2 * ((e % 128) / 32);
      const int low = (x[i].qs[32 * (e / 128) + e % 32] >> shift) & 3;
      const bool high = x[i].hmask[e % 32] & (1 << (e / 32));
      y[e] = dl * float(low - (high ? 0 : 4));
    }
  }
}

}  // namespace temper::quant
