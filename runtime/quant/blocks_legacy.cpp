// Legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. Without an imatrix ggml's
// quantize_<type> runs quantize_row_<type>_ref; with one it runs quantize_row_<type>_impl (Q8_0
// ignores the imatrix). Ported from ggml src/ggml-quants.c; see quant_common.h for the rules.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "quant/quant_common.h"
#include "quant/simd_legacy.h"

namespace temper::quant {
namespace {

// Signed element of largest magnitude, first one on ties (the amax/max loop of the _ref quantizers).
inline float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
  }
  return max;
}

inline void min_max(const float* x, int n, float* mn, float* mx) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

// Packs 5-bit values: low nibbles as Q4_0, bit 4 of element j into bit j of the LE u32 qh.
template <typename Q>
void pack_5bit(const Q* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const uint8_t a = uint8_t(q[j]), b = uint8_t(q[j + 16]);
    qs[j] = uint8_t((a & 0x0F) | ((b & 0x0F) << 4));
    qh |= ((a & 0x10u) >> 4) << j;
    qh |= ((b & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

// imatrix weights of one 32-block: qw * sqrt(sigma2 + x^2) (the _impl variants).
inline void imatrix_weights(const float* x, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < kQK; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

}  // namespace

// ---- Q4_0 (quantize_row_q4_0_ref, quantize_row_q4_0_impl, dequantize_row_q4_0)

static void q4_0_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ4_0*>(vy);
  const int64_t nb = n / kQK;
  if (!imatrix) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
      const float d = signed_absmax(x, kQK) / -8.f;
      const float id = d ? 1.0f / d : 0.0f;
      y[i].d = to_f16(d);
      for (int j = 0; j < 16; ++j) {
        const uint8_t q0 = uint8_t(std::min<int>(15, trunc_to_i8(x[j] * id + 8.5f)));
        const uint8_t q1 = uint8_t(std::min<int>(15, trunc_to_i8(x[j + 16] * id + 8.5f)));
        y[i].qs[j] = uint8_t(q0 | (q1 << 4));
      }
    }
    return;
  }
  const float sigma2 = sum_squares(x, n) / float(n);
  float w[kQK];
  int8_t L[kQK];
  for (int64_t i = 0; i < nb; ++i) {
    imatrix_weights(x + kQK * i, imatrix + kQK * i, sigma2, w);
    y[i].d = to_f16(s.qx(kQK, 8, x + kQK * i, L, 1, w));
    for (int j = 0; j < 16; ++j) y[i].qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
  }
}

void quantize_q4_0(const float* x, void* y, int64_t n, const float* imatrix) {
#if defined(__AVX2__)
  if (!imatrix) return simd::quantize_q4_0_plain(x, static_cast<BlockQ4_0*>(y), n / kQK);
#endif
  q4_0_rows(x, y, n, imatrix, kFastSearches);
}

void quantize_q4_0_ref(const float* x, void* y, int64_t n, const float* imatrix) {
  q4_0_rows(x, y, n, imatrix, kScalarSearches);
}

void dequantize_q4_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(vx);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = from_f16(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + 16] = float((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

// ---- Q4_1 (quantize_row_q4_1_ref, quantize_row_q4_1_impl, dequantize_row_q4_1)

static void q4_1_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ4_1*>(vy);
  const int64_t nb = n / kQK;
  if (!imatrix) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
      float min, max;
      min_max(x, kQK, &min, &max);
      const float d = (max - min) / 15.f;
      const float id = d ? 1.0f / d : 0.0f;
      y[i].d = to_f16(d);
      y[i].m = to_f16(min);
      for (int j = 0; j < 16; ++j) {
        const uint8_t q0 = uint8_t(std::min<int>(15, trunc_to_i8((x[j] - min) * id + 0.5f)));
        const uint8_t q1 = uint8_t(std::min<int>(15, trunc_to_i8((x[j + 16] - min) * id + 0.5f)));
        y[i].qs[j] = uint8_t(q0 | (q1 << 4));
      }
    }
    return;
  }
  const float sigma2 = sum_squares(x, n) / float(n);
  float w[kQK], the_min;
  uint8_t L[kQK], Laux[kQK];
  for (int64_t i = 0; i < nb; ++i) {
    imatrix_weights(x + kQK * i, imatrix + kQK * i, sigma2, w);
    const float d = s.qkx(kQK, 15, x + kQK * i, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false, true);
    y[i].d = to_f16(d);
    y[i].m = to_f16(-the_min);
    for (int j = 0; j < 16; ++j) y[i].qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
  }
}

void quantize_q4_1_ref(const float* x, void* y, int64_t n, const float* imatrix) { q4_1_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q4_1(const float* x, void* y, int64_t n, const float* imatrix) { q4_1_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q4_1(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(vx);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = from_f16(x[i].d), m = from_f16(x[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(x[i].qs[j] & 0x0F) * d + m;
      y[j + 16] = float(x[i].qs[j] >> 4) * d + m;
    }
  }
}

// ---- Q5_0 (quantize_row_q5_0_ref, quantize_row_q5_0_impl, dequantize_row_q5_0)

static void q5_0_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ5_0*>(vy);
  const int64_t nb = n / kQK;
  if (!imatrix) {
    uint8_t q[kQK];
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
      const float d = signed_absmax(x, kQK) / -16.f;
      const float id = d ? 1.0f / d : 0.0f;
      y[i].d = to_f16(d);
      for (int j = 0; j < kQK; ++j) q[j] = uint8_t(std::min<int>(31, trunc_to_i8(x[j] * id + 16.5f)));
      pack_5bit(q, y[i].qs, y[i].qh);
    }
    return;
  }
  const float sigma2 = sum_squares(x, n) / float(n);
  float w[kQK];
  int8_t L[kQK];
  for (int64_t i = 0; i < nb; ++i) {
    imatrix_weights(x + kQK * i, imatrix + kQK * i, sigma2, w);
    y[i].d = to_f16(s.qx(kQK, 16, x + kQK * i, L, 1, w));
    pack_5bit(L, y[i].qs, y[i].qh);
  }
}

void quantize_q5_0_ref(const float* x, void* y, int64_t n, const float* imatrix) { q5_0_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q5_0(const float* x, void* y, int64_t n, const float* imatrix) { q5_0_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q5_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(vx);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = from_f16(x[i].d);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
      y[j] = float(((x[i].qs[j] & 0x0F) | h0) - 16) * d;
      y[j + 16] = float(((x[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

// ---- Q5_1 (quantize_row_q5_1_ref, quantize_row_q5_1_impl, dequantize_row_q5_1)

static void q5_1_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ5_1*>(vy);
  const int64_t nb = n / kQK;
  if (!imatrix) {
    uint8_t q[kQK];
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
      float min, max;
      min_max(x, kQK, &min, &max);
      const float d = (max - min) / 31.f;
      const float id = d ? 1.0f / d : 0.0f;
      y[i].d = to_f16(d);
      y[i].m = to_f16(min);
      for (int j = 0; j < kQK; ++j) q[j] = trunc_to_u8((x[j] - min) * id + 0.5f);  // no clamp in ggml
      pack_5bit(q, y[i].qs, y[i].qh);
    }
    return;
  }
  const float sigma2 = sum_squares(x, n) / float(n);
  float w[kQK], the_min;
  uint8_t L[kQK], Laux[kQK];
  for (int64_t i = 0; i < nb; ++i) {
    imatrix_weights(x + kQK * i, imatrix + kQK * i, sigma2, w);
    const float d = s.qkx(kQK, 31, x + kQK * i, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false, true);
    y[i].d = to_f16(d);
    y[i].m = to_f16(-the_min);
    pack_5bit(L, y[i].qs, y[i].qh);
  }
}

void quantize_q5_1_ref(const float* x, void* y, int64_t n, const float* imatrix) { q5_1_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q5_1(const float* x, void* y, int64_t n, const float* imatrix) { q5_1_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q5_1(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(vx);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = from_f16(x[i].d), m = from_f16(x[i].m);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
      y[j] = float((x[i].qs[j] & 0x0F) | h0) * d + m;
      y[j + 16] = float((x[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

// ---- Q8_0 (quantize_row_q8_0_ref via quantize_q8_0, which ignores the imatrix; dequantize_row_q8_0)

void quantize_q8_0_ref(const float* x, void* vy, int64_t n, const float* /*imatrix: unused by ggml*/) {
  auto* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = ggml_max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_f16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = trunc_to_i8(std::round(x[j] * id));  // roundf: ties away
  }
}

void quantize_q8_0(const float* x, void* y, int64_t n, const float* imatrix) {
#if defined(__AVX2__)
  return simd::quantize_q8_0(x, static_cast<BlockQ8_0*>(y), n / kQK);
#endif
  quantize_q8_0_ref(x, y, n, imatrix);
}

void dequantize_q8_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = from_f16(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[i].qs[j]) * d;
  }
}

}  // namespace temper::quant
