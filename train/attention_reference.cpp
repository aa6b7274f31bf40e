// Scalar reference of train::attention_backward (kernels.h): the implementation training used
// before the tiled kernel, kept as its oracle (tests only; never optimised). Backward of causal
// GQA attention with sliding-window and packed-example masks (see kernels.h). Probabilities
// are recomputed from the forward's log-sum-exp, P_ij = exp(scale q_i·k_j - lse_i), exactly as
// the forward normalised them (up to rounding).
//   pass 1, per (query i, head h):   D_i = dO_i·O_i,  dQ_i = scale Σ_j P_ij (dO_i·V_j - D_i) K_j
//   pass 2, per (key j, kv head g):  dV_j = Σ_{i, h in g} P_ij dO_i,
//                                    dK_j = scale Σ_{i, h in g} P_ij (dO_i·V_j - D_i) Q_i
// (D_i = Σ_j P_ij dO_i·V_j because O_i = Σ_j P_ij V_j.) Each pass writes only its own rows.
#include <algorithm>
#include <cmath>
#include <vector>

#include "train/attention_reference.h"

namespace temper::train {

namespace {

// First key visible to query i: the window's start, or its example's start if later.
inline int64_t first_visible(int64_t i, const int32_t* first_key, int window) {
  int64_t f = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
  if (first_key) f = std::max<int64_t>(f, first_key[i]);
  return f;
}

inline float dot(const float* a, const float* b, int n) {
  float acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int d = 0; d < n; ++d) acc += a[d] * b[d];
  return acc;
}

}  // namespace

void attention_backward_reference(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const float* out, const float* lse, const int32_t* first_key,
                                  int64_t n, int NH, int NKV, int HD, int window, float scale) {
  const int group = NH / NKV;
  const int64_t qs = int64_t(NH) * HD, kvs = int64_t(NKV) * HD;
  // Below ~64k multiply-adds a parallel region costs more than it saves.
  const bool parallel = n * n * NH * HD >= (int64_t{1} << 16);
  std::vector<float> delta(size_t(n * NH));  // D_i per (token, head)

#pragma omp parallel if (parallel)
  {
    std::vector<double> acc(static_cast<size_t>(HD));
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < n * NH; ++pair) {
      const int64_t i = pair / NH;
      const int h = int(pair % NH);
      const float* qi = q + i * qs + int64_t(h) * HD;
      const float* doi = dout + i * qs + int64_t(h) * HD;
      const int64_t ko = int64_t(h / group) * HD;
      double d = 0;
      for (int e = 0; e < HD; ++e) d += double(doi[e]) * out[i * qs + int64_t(h) * HD + e];
      delta[pair] = float(d);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = first_visible(i, first_key, window); j <= i; ++j) {
        const float p = std::exp(dot(qi, k + j * kvs + ko, HD) * scale - lse[pair]);
        const double ds = double(p) * (double(dot(doi, v + j * kvs + ko, HD)) - d);
        for (int e = 0; e < HD; ++e) acc[e] += ds * k[j * kvs + ko + e];
      }
      float* dqi = dq + i * qs + int64_t(h) * HD;
      for (int e = 0; e < HD; ++e) dqi[e] = float(scale * acc[e]);
    }

    std::vector<double> acc_k(static_cast<size_t>(HD)), acc_v(static_cast<size_t>(HD));
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < n * NKV; ++pair) {
      const int64_t j = pair / NKV;
      const int g = int(pair % NKV);
      const float* kj = k + j * kvs + int64_t(g) * HD;
      const float* vj = v + j * kvs + int64_t(g) * HD;
      std::fill(acc_k.begin(), acc_k.end(), 0.0);
      std::fill(acc_v.begin(), acc_v.end(), 0.0);
      for (int64_t i = j; i < n; ++i) {
        if (window > 0 && i - j >= window) break;  // later queries are further away still
        if (first_key && first_key[i] > j) continue;
        for (int h = g * group; h < (g + 1) * group; ++h) {
          const float* qi = q + i * qs + int64_t(h) * HD;
          const float* doi = dout + i * qs + int64_t(h) * HD;
          const float p = std::exp(dot(qi, kj, HD) * scale - lse[i * NH + h]);
          const double ds = double(p) * (double(dot(doi, vj, HD)) - delta[i * NH + h]);
          for (int e = 0; e < HD; ++e) {
            acc_v[e] += double(p) * doi[e];
            acc_k[e] += ds * qi[e];
          }
        }
      }
      for (int e = 0; e < HD; ++e) {
        dk[j * kvs + int64_t(g) * HD + e] = float(scale * acc_k[e]);
        dv[j * kvs + int64_t(g) * HD + e] = float(acc_v[e]);
      }
    }
  }
}

}  // namespace temper::train
