// Backward of causal GQA attention with sliding-window and packed-example masks (see
// kernels.h), tiled the FlashAttention-2 way. Probabilities are recomputed per tile from the
// forward's log-sum-exp, P = exp(scale Q Kᵀ - lse), never stored beyond one tile:
//   D_i = dO_i·O_i                          (= Σ_j P_ij dO_i·V_j, as O_i = Σ_j P_ij V_j)
//   dP = dO Vᵀ,  dS = P ∘ (dP - D)
//   dV = Pᵀ dO,  dK = scale dSᵀ Q,  dQ = scale dS K.
// Tiles stack the `group` query heads of one KV head as rows (attention_tile.h). Two passes,
// each over independent outputs so no two threads add into the same float: pass 1 owns a key
// tile (kKeys keys x one KV head) and sweeps the query tiles that see it for dK and dV; pass 2
// owns a query tile and sweeps its key tiles for dQ. Both recompute S and dP (7 tile products
// where a shared dQ accumulator would need 5), the price of needing no atomics or per-thread
// dQ copies. The scalar oracle is train/attention_reference.cpp.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "forward/attention_tile.h"
#include "train/kernels.h"

namespace temper::train {

namespace at = forward::attention_tile;

namespace {

// First key visible to query i: the window's start, or its example's start if later.
inline int64_t first_visible(int64_t i, const int32_t* first_key, int window) {
  int64_t f = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
  if (first_key) f = std::max<int64_t>(f, first_key[i]);
  return f;
}

// Per-thread tile buffers, rows x kKeys scores and rows x HD operands.
struct Tiles {
  std::vector<float> q, dout, p, dp, acc_a, acc_b;
  Tiles(int rows, int HD)
      : q(size_t(rows) * HD), dout(size_t(rows) * HD), p(size_t(rows) * at::kKeys),
        dp(size_t(rows) * at::kKeys), acc_a(size_t(std::max(rows, at::kKeys)) * HD),
        acc_b(size_t(at::kKeys) * HD) {}
};

// For the rows (tokens i0 .. i0+nt-1 x `group` heads from h0) against keys j0 .. j0+nk-1:
// P and dS = P ∘ (dP - D) in t.p and t.dp, from Q, dO (in t.q, t.dout) and K, V rows.
// Returns false (and leaves the tiles unset) when no row sees any of these keys.
bool probs_and_dscores(Tiles& t, const float* k, const float* v, int64_t kvs,
                       const float* lse, const float* delta, const int32_t* first_key,
                       int window, int64_t i0, int nt, int h0, int group, int NH, int64_t j0,
                       int nk, int HD, float scale) {
  bool any = false;
  for (int ti = 0; ti < nt && !any; ++ti) {
    const int64_t i = i0 + ti;
    any = first_visible(i, first_key, window) < j0 + nk && i >= j0;
  }
  if (!any) return false;
  const int rows = nt * group;
  // S = scale Q Kᵀ and dP = dO Vᵀ (rows x nk), K and V rows read in place.
  at::product_abt(t.p.data(), at::kKeys, t.q.data(), HD, k, kvs, rows, nk, HD, scale);
  at::product_abt(t.dp.data(), at::kKeys, t.dout.data(), HD, v, kvs, rows, nk, HD, 1.0f);
  for (int r = 0; r < rows; ++r) {
    const int64_t i = i0 + r / group;
    const int64_t row = i * NH + h0 + r % group;
    const int a = int(std::clamp<int64_t>(first_visible(i, first_key, window) - j0, 0, nk));
    const int b = int(std::clamp<int64_t>(i + 1 - j0, 0, nk));
    float* pr = t.p.data() + int64_t(r) * at::kKeys;
    float* dr = t.dp.data() + int64_t(r) * at::kKeys;
    const float l = lse[row], d = delta[row];
#pragma omp simd
    for (int j = 0; j < nk; ++j) {
      const float p = j >= a && j < b ? at::exp_approx(pr[j] - l) : 0.0f;
      pr[j] = p;
      dr[j] = p * (dr[j] - d);
    }
  }
  return true;
}

}  // namespace

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                        const float* k, const float* v, const float* out, const float* lse,
                        const int32_t* first_key, int64_t n, int NH, int NKV, int HD, int window,
                        float scale) {
  const int group = NH / NKV;
  const int64_t qs = int64_t(NH) * HD, kvs = int64_t(NKV) * HD;
  // Below ~64k multiply-adds a parallel region costs more than it saves.
  const bool parallel = n * n * NH * HD >= (int64_t{1} << 16);
  const int64_t tile_tokens = std::max(1, at::kRows / group);
  const int rows_max = int(tile_tokens) * group;
  const int64_t n_key_tiles = (n + at::kKeys - 1) / at::kKeys;
  const int64_t n_query_tiles = (n + tile_tokens - 1) / tile_tokens;
  std::vector<float> delta(size_t(n * NH));  // D_i per (token, head)

#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (int64_t row = 0; row < n * NH; ++row) {
      const float* o = out + row * HD;  // (token, head) rows are contiguous in (n, NH*HD)
      const float* g = dout + row * HD;
      double d = 0;
      for (int e = 0; e < HD; ++e) d += double(g[e]) * o[e];
      delta[size_t(row)] = float(d);
    }
    Tiles t(rows_max, HD);

    // Pass 1: dK, dV of key tile (j0, KV head g) from every query tile that sees it.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_key_tiles * NKV; ++task) {
      const int64_t j0 = task / NKV * at::kKeys;
      const int g = int(task % NKV), h0 = g * group;
      const int nk = int(std::min<int64_t>(at::kKeys, n - j0));
      const float* kt = k + j0 * kvs + int64_t(g) * HD;
      const float* vt = v + j0 * kvs + int64_t(g) * HD;
      float* dk_acc = t.acc_a.data();
      float* dv_acc = t.acc_b.data();
      std::fill(dk_acc, dk_acc + int64_t(nk) * HD, 0.0f);
      std::fill(dv_acc, dv_acc + int64_t(nk) * HD, 0.0f);
      for (int64_t i0 = j0; i0 < n; i0 += tile_tokens) {
        if (window > 0 && i0 - (j0 + nk - 1) >= window) break;  // later queries: further still
        const int nt = int(std::min(tile_tokens, n - i0)), rows = nt * group;
        at::copy_rows(t.q.data(), q + i0 * qs + int64_t(h0) * HD, qs, nt, group * HD);
        at::copy_rows(t.dout.data(), dout + i0 * qs + int64_t(h0) * HD, qs, nt, group * HD);
        if (!probs_and_dscores(t, kt, vt, kvs, lse, delta.data(), first_key, window, i0, nt, h0,
                               group, NH, j0, nk, HD, scale))
          continue;
        // dV += Pᵀ dO, dK += dSᵀ Q (nk x HD).
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HD, rows, 1.0f, t.p.data(),
                    at::kKeys, t.dout.data(), HD, 1.0f, dv_acc, HD);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HD, rows, 1.0f, t.dp.data(),
                    at::kKeys, t.q.data(), HD, 1.0f, dk_acc, HD);
      }
      for (int c = 0; c < nk; ++c)
        for (int e = 0; e < HD; ++e) {
          dk[(j0 + c) * kvs + int64_t(g) * HD + e] = scale * dk_acc[int64_t(c) * HD + e];
          dv[(j0 + c) * kvs + int64_t(g) * HD + e] = dv_acc[int64_t(c) * HD + e];
        }
    }

    // Pass 2: dQ of query tile (i0, the heads of KV head g) from the key tiles it sees.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_query_tiles * NKV; ++task) {
      const int64_t i0 = task / NKV * tile_tokens;
      const int g = int(task % NKV), h0 = g * group;
      const int nt = int(std::min(tile_tokens, n - i0)), rows = nt * group;
      at::copy_rows(t.q.data(), q + i0 * qs + int64_t(h0) * HD, qs, nt, group * HD);
      at::copy_rows(t.dout.data(), dout + i0 * qs + int64_t(h0) * HD, qs, nt, group * HD);
      float* dq_acc = t.acc_a.data();
      std::fill(dq_acc, dq_acc + int64_t(rows) * HD, 0.0f);
      int64_t lo = i0;
      for (int ti = 0; ti < nt; ++ti) lo = std::min(lo, first_visible(i0 + ti, first_key, window));
      for (int64_t j0 = lo; j0 < i0 + nt; j0 += at::kKeys) {
        const int nk = int(std::min<int64_t>(at::kKeys, i0 + nt - j0));
        const float* kt = k + j0 * kvs + int64_t(g) * HD;
        if (!probs_and_dscores(t, kt, v + j0 * kvs + int64_t(g) * HD, kvs, lse, delta.data(),
                               first_key, window, i0, nt, h0, group, NH, j0, nk, HD, scale))
          continue;
        // dQ += dS K (rows x HD).
        at::product_add_ab(dq_acc, HD, t.dp.data(), at::kKeys, kt, kvs, rows, HD, nk);
      }
      for (int r = 0; r < rows; ++r) {
        float* dst = dq + (i0 + r / group) * qs + int64_t(h0 + r % group) * HD;
        for (int e = 0; e < HD; ++e) dst[e] = scale * dq_acc[int64_t(r) * HD + e];
      }
    }
  }
}

}  // namespace temper::train
