// Q4_K, Q5_K (8 sub-blocks of 32 with 6-bit scale+min) and Q6_K (16 sub-blocks of 16, int8
// scales). Without an imatrix ggml runs quantize_row_q*_K_ref, with one quantize_row_q*_K_impl.
// Ported from ggml-quants.c.
#include <algorithm>
#include <cmath>

#include "quant/quant_common.h"

namespace temper::quant {
namespace {

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// ggml get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// Inverse of scale_min_k4 for all 8 sub-blocks, in ggml's byte write order.
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* s) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      s[j - 0] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
}

// ggml's search parameters of a Q4_K (nmax 15) or Q5_K (nmax 31) row: make_qkx2_quants(rmin,
// 0.1, nstep) in the _ref path, make_qkx3_quants(-0.9, 0.05, 36) in the _impl path.
struct K4Params {
  int nmax;
  float ref_rmin;
  int ref_nstep;
};

// Vectorised search of super-blocks i and i+1 (if present) into scales/mins/sw[16], L[512];
// returns which of the two are done (see k4_search8).
unsigned k4_search_pair(const float* x, const float* qw, int64_t nb_left, const K4Params& p, float* scales,
                        float* mins, float* sw, uint8_t* L) {
  const int nblocks = nb_left >= 2 ? 2 : 1;
  if (qw) return k4_search8(nblocks, x, qw, p.nmax, -0.9f, 0.05f, 36, scales, mins, sw, L);
  return k4_search8(nblocks, x, nullptr, p.nmax, p.ref_rmin, 0.1f, p.ref_nstep, scales, mins, sw, L);
}

// Sub-block search shared by Q4_K and Q5_K. Fills d/dmin/scales of the block and L (before
// requantization). With `searched`, scales/mins/sw/L already hold k4_search8's results.
void k4_search(const Searches& s, const float* x, const float* qw, const K4Params& p, bool searched, float* scales,
               float* mins, float* sw, uint16_t* d_out, uint16_t* dmin_out, uint8_t* packed, uint8_t* L) {
  const int nmax = p.nmax;
  uint8_t Laux[32], ls[8], lm[8];
  float w[32];
  if (!qw) {  // quantize_row_q4_K_ref / quantize_row_q5_K_ref
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      if (searched) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
        continue;
      }
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32.f);
      for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = s.qkx(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, p.ref_rmin, 0.1f, p.ref_nstep, false, false);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
      lm[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
    }
    pack_scale_min_k4(ls, lm, packed);
    *d_out = to_f16(max_scale / 63.f);
    *dmin_out = to_f16(max_min / 63.f);
    return;
  }
  // quantize_row_q4_K_impl / quantize_row_q5_K_impl
  const float sigma2 = searched ? 0.f : 2 * sum_squares(x, kQK_K) / float(kQK_K);
  for (int j = 0; j < 8 && !searched; ++j) {
    for (int l = 0; l < 32; ++l) w[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += w[l];
    sw[j] = sumw;
    scales[j] = s.qkx(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, true);
  }
  const float d_block = make_qp_quants(8, 63, scales, ls, sw);
  const float m_block = make_qp_quants(8, 63, mins, lm, sw);
  if (nmax == 31) {  // only the Q5_K _impl clamps the searched 6-bit values
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<uint8_t>(63, ls[j]);
      lm[j] = std::min<uint8_t>(63, lm[j]);
    }
  }
  pack_scale_min_k4(ls, lm, packed);
  *d_out = to_f16(d_block);
  *dmin_out = to_f16(m_block);
}

// Requantization with the stored fp16 d/dmin and 6-bit scales; sub-blocks with d*sc == 0 keep L.
void k4_requantize(const float* x, uint16_t d16, uint16_t dmin16, const uint8_t* packed, int nmax, uint8_t* L, bool fast) {
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, packed, &sc, &m);
    const float d = from_f16(d16) * float(sc);
    if (!d) continue;
    const float dm = from_f16(dmin16) * float(m);
    if (fast) {
      k4_requantize32(x + 32 * j, d, dm, nmax, L + 32 * j);
      continue;
    }
    for (int ii = 0; ii < 32; ++ii) L[32 * j + ii] = uint8_t(clamp_int(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
  }
}

// The super-blocks of a Q4_K/Q5_K row: scale search (on the fast path two super-blocks at a
// time, k4_search_pair), requantization with the stored scales, then pack(block, L).
template <typename Block, typename Pack>
void k4_rows(const float* x, Block* y, int64_t n, const float* imatrix, const Searches& s, const K4Params& p, Pack pack) {
  uint8_t Lpair[2 * kQK_K];
  float scales[16], mins[16], sw[16];
  unsigned searched = 0;
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    const float* qw = imatrix ? imatrix + kQK_K * i : nullptr;
    const int h = int(i & 1);  // position in the pair searched together
    if (s.fast && h == 0) searched = k4_search_pair(x, qw, nb - i, p, scales, mins, sw, Lpair);
    uint8_t* L = Lpair + kQK_K * h;
    k4_search(s, x, qw, p, searched >> h & 1, scales + 8 * h, mins + 8 * h, sw + 8 * h, &y[i].d, &y[i].dmin, y[i].scales, L);
    k4_requantize(x, y[i].d, y[i].dmin, y[i].scales, p.nmax, L, s.fast);
    pack(y[i], L);
  }
}

}  // namespace

// ---- Q4_K

static void q4_K_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ4_K*>(vy);
  k4_rows(x, y, n, imatrix, s, K4Params{15, -1.f, 20}, [](BlockQ4_K& b, const uint8_t* L) {
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + l + 32] << 4));
  });
}

void quantize_q4_K_ref(const float* x, void* y, int64_t n, const float* imatrix) { q4_K_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q4_K(const float* x, void* y, int64_t n, const float* imatrix) { q4_K_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q4_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = from_f16(x[i].d), min = from_f16(x[i].dmin);
    for (int j = 0; j < 8; ++j, y += 32) {
      uint8_t sc, m;
      scale_min_k4(j, x[i].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = min * float(m);
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) y[l] = d1 * float(j % 2 ? q[l] >> 4 : q[l] & 0xF) - m1;
    }
  }
}

// ---- Q5_K

static void q5_K_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ5_K*>(vy);
  k4_rows(x, y, n, imatrix, s, K4Params{31, -0.5f, 15}, [](BlockQ5_K& b, const uint8_t* L) {
    std::memset(b.qh, 0, 32);
    for (int c = 0; c < 4; ++c) {
      const uint8_t m1 = uint8_t(1 << (2 * c)), m2 = uint8_t(2 << (2 * c));
      for (int j = 0; j < 32; ++j) {
        int l1 = L[64 * c + j], l2 = L[64 * c + j + 32];
        if (l1 > 15) { l1 -= 16; b.qh[j] |= m1; }
        if (l2 > 15) { l2 -= 16; b.qh[j] |= m2; }
        b.qs[32 * c + j] = uint8_t(l1 | (l2 << 4));
      }
    }
  });
}

void quantize_q5_K_ref(const float* x, void* y, int64_t n, const float* imatrix) { q5_K_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q5_K(const float* x, void* y, int64_t n, const float* imatrix) { q5_K_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q5_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = from_f16(x[i].d), min = from_f16(x[i].dmin);
    for (int j = 0; j < 8; ++j, y += 32) {
      uint8_t sc, m;
      scale_min_k4(j, x[i].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = min * float(m);
      const uint8_t* ql = x[i].qs + 32 * (j / 2);
      const uint8_t hbit = uint8_t(1 << j);
      for (int l = 0; l < 32; ++l) {
        const int lo = j % 2 ? ql[l] >> 4 : ql[l] & 0xF;
        y[l] = d1 * float(lo + (x[i].qh[l] & hbit ? 16 : 0)) - m1;
      }
    }
  }
}

// ---- Q6_K (quantize_row_q6_K_ref; _impl differs only in passing the raw imatrix as weights)

static void q6_K_rows(const float* x, void* vy, int64_t n, const float* imatrix, const Searches& s) {
  auto* y = static_cast<BlockQ6_K*>(vy);
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      const float* qw = imatrix ? imatrix + kQK_K * i + 16 * ib : nullptr;
      scales[ib] = s.qx(16, 32, x + 16 * ib, L + 16 * ib, 1, qw);
      if (std::fabs(scales[ib]) > max_abs_scale) { max_abs_scale = std::fabs(scales[ib]); max_scale = scales[ib]; }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      y[i].d = to_f16(0.f);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y[i].scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    const float dall = from_f16(y[i].d);
    for (int j = 0; j < 16; ++j) {
      const float d = dall * float(y[i].scales[j]);
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = int8_t(clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* Lh = L + 128 * h;
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_q6_K_ref(const float* x, void* y, int64_t n, const float* imatrix) { q6_K_rows(x, y, n, imatrix, kScalarSearches); }
void quantize_q6_K(const float* x, void* y, int64_t n, const float* imatrix) { q6_K_rows(x, y, n, imatrix, kFastSearches); }

void dequantize_q6_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ6_K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d = from_f16(x[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, r = e % 128, l = r % 32, part = r / 32;  // part 0..3 = +0,+32,+64,+96
      const uint8_t lb = x[i].ql[64 * h + l + 32 * (part & 1)];
      const int lo = part < 2 ? lb & 0xF : lb >> 4;
      const int hi = (x[i].qh[32 * h + l] >> (2 * part)) & 3;
      const int8_t q = int8_t((lo | (hi << 4)) - 32);
      y[e] = d * float(x[i].scales[e / 16]) * float(q);
    }
  }
}

}  // namespace temper::quant
