// Scalar vector-Jacobian products of the references in forward_scalar.h, templated on T.
// Each takes the output gradient and the forward's inputs and returns input gradients.
// Convention: gradients of frozen inputs are never computed; "accumulates" means the result is
// added to the output buffer (several paths meet there), otherwise it is overwritten.
// Checked against central finite differences of forward_scalar.h in tests/train.
#pragma once
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "train/ref/forward_scalar.h"

namespace temper::train::ref {

template <typename T> T silu_grad(T x) {
  const T s = T(1) / (T(1) + std::exp(-x));
  return s * (T(1) + x * (T(1) - s));
}
template <typename T> T gelu_tanh_grad(T x) {
  const T k = std::sqrt(T(2) / T(std::numbers::pi)), c = T(0.044715);
  const T t = std::tanh(k * (x + c * x * x * x));
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * c * x * x);
}
template <typename T> T activation_grad(T x, Activation act) {
  return act == Activation::kSilu ? silu_grad(x) : gelu_tanh_grad(x);
}

// dx (n, K) accumulates dy (n, N) · W. No gradient for the frozen W.
template <typename T>
void linear_backward(T* dx, const T* dy, const T* w, int64_t n, int64_t K, int64_t N) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < K; ++i) {
      T acc = 0;
      for (int64_t o = 0; o < N; ++o) acc += dy[t * N + o] * w[o * K + i];
      dx[t * K + i] += acc;
    }
}

// VJP of lora_forward: dx (n, K), da (r, K) and db (N, r) accumulate.
template <typename T>
void lora_backward(T* dx, T* da, T* db, const T* dy, const T* x, const T* a, const T* b, T s,
                   int64_t n, int64_t K, int64_t N, int r) {
  std::vector<T> u(static_cast<size_t>(r)), du(static_cast<size_t>(r));
  for (int64_t t = 0; t < n; ++t) {
    for (int j = 0; j < r; ++j) {
      T acc = 0, dacc = 0;
      for (int64_t i = 0; i < K; ++i) acc += x[t * K + i] * a[j * K + i];
      for (int64_t o = 0; o < N; ++o) dacc += dy[t * N + o] * b[o * r + j];
      u[j] = acc;
      du[j] = s * dacc;
    }
    for (int64_t o = 0; o < N; ++o)
      for (int j = 0; j < r; ++j) db[o * r + j] += s * dy[t * N + o] * u[j];
    for (int j = 0; j < r; ++j)
      for (int64_t i = 0; i < K; ++i) {
        da[j * K + i] += du[j] * x[t * K + i];
        dx[t * K + i] += du[j] * a[j * K + i];
      }
  }
}

// VJP of rmsnorm_forward w.r.t. its input (the norm weight is frozen); dinp accumulates.
// With g = dout · (offset + w) and rstd = (mean(x²) + eps)^-½:
//   dx_i = rstd · g_i - x_i · rstd³ · (Σ_j g_j x_j) / D.
template <typename T>
void rmsnorm_backward(T* dinp, const T* dout, const T* inp, const float* weight, T offset,
                      int64_t n_rows, int dim, T eps) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const T* x = inp + r * dim;
    T ss = 0, gx = 0;
    for (int i = 0; i < dim; ++i) ss += x[i] * x[i];
    const T rstd = T(1) / std::sqrt(ss / T(dim) + eps);
    for (int i = 0; i < dim; ++i)
      gx += dout[r * dim + i] * (weight ? offset + T(weight[i]) : T(1)) * x[i];
    for (int i = 0; i < dim; ++i) {
      const T g = dout[r * dim + i] * (weight ? offset + T(weight[i]) : T(1));
      dinp[r * dim + i] += rstd * g - x[i] * rstd * rstd * rstd * gx / T(dim);
    }
  }
}

// VJP of RoPE: the rotation is orthogonal, so the gradient is rotated back (the inverse
// rotation, angle negated), in place.
template <typename T>
void rope_backward(T* dx, const int32_t* pos, int64_t n, int n_head, int64_t row_stride,
                   const forward::RopeParams& p) {
  rope_rotate(dx, pos, n, n_head, row_stride, p, -1);
}

// VJP of attention_forward: dq, dk, dv are overwritten. With P the softmax of row i,
//   dV_j += P_ij dO_i,  dS_ij = P_ij (dO_i·V_j - Σ_k P_ik dO_i·V_k),
//   dQ_i += scale Σ_j dS_ij K_j,  dK_j += scale dS_ij Q_i   (summed over the group's heads).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const int32_t* segment, int64_t n, int NH, int NKV, int HD, int window,
                        T scale) {
  const int64_t qs = int64_t(NH) * HD, kvs = int64_t(NKV) * HD;
  std::fill(dq, dq + n * qs, T(0));
  std::fill(dk, dk + n * kvs, T(0));
  std::fill(dv, dv + n * kvs, T(0));
  std::vector<T> p(static_cast<size_t>(n)), dp(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    for (int h = 0; h < NH; ++h) {
      const int64_t ko = int64_t(h / (NH / NKV)) * HD, qo = i * qs + h * HD;
      attention_probs(p.data(), q, k, segment, i, qo, ko, n, kvs, HD, window, scale);
      T pdp = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (!key_visible(i, j, segment, window)) continue;
        T dot = 0;
        for (int d = 0; d < HD; ++d) dot += dout[qo + d] * v[j * kvs + ko + d];
        dp[j] = dot;
        pdp += p[j] * dot;
      }
      for (int64_t j = 0; j < n; ++j) {
        if (!key_visible(i, j, segment, window)) continue;
        const T ds = p[j] * (dp[j] - pdp);
        for (int d = 0; d < HD; ++d) {
          dv[j * kvs + ko + d] += p[j] * dout[qo + d];
          dq[qo + d] += scale * ds * k[j * kvs + ko + d];
          dk[j * kvs + ko + d] += scale * ds * q[qo + d];
        }
      }
    }
}

// VJP of glu_forward: dgate = dout · up · act'(gate), dup = dout · act(gate) (overwritten).
template <typename T>
void glu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n,
                  Activation act) {
  for (int64_t i = 0; i < n; ++i) {
    dgate[i] = dout[i] * up[i] * activation_grad(gate[i], act);
    dup[i] = dout[i] * activation(gate[i], act);
  }
}

// Gradient of grad_scale · cross_entropy_forward w.r.t. h (overwritten; zero rows for
// untrained tokens): dlogit_v = (p_v - [v = target]) · (1 - (z_v / c)²) with the softcap.
template <typename T>
void cross_entropy_backward(T* dh, const T* h, const T* w, const int32_t* target, int64_t n,
                            int64_t H, int64_t V, T softcap, T grad_scale) {
  std::vector<T> z(static_cast<size_t>(V));
  std::fill(dh, dh + n * H, T(0));
  for (int64_t t = 0; t < n; ++t) {
    if (target[t] < 0) continue;
    linear_forward(z.data(), h + t * H, w, 1, H, V);
    if (softcap != 0)
      for (T& x : z) x = softcap * std::tanh(x / softcap);
    const T mx = *std::max_element(z.begin(), z.end());
    T denom = 0;
    for (T x : z) denom += std::exp(x - mx);
    for (int64_t o = 0; o < V; ++o) {
      T dz = std::exp(z[o] - mx) / denom - (o == target[t] ? T(1) : T(0));
      if (softcap != 0) dz *= T(1) - (z[o] / softcap) * (z[o] / softcap);
      for (int64_t i = 0; i < H; ++i) dh[t * H + i] += grad_scale * dz * w[o * H + i];
    }
  }
}

// VJP of route_weights w.r.t. the logits (dlogits overwritten). With g_k = dw_k · scale_{e_k},
// s = Σ_S p: renormalised dp_{e_k} = g_k / s - Σ_j g_j p_{e_j} / s², else dp_{e_k} = g_k (0 for
// experts not chosen); then the softmax VJP dz_e = p_e (dp_e - Σ_j p_j dp_j).
template <typename T>
void route_backward(T* dlogits, const T* dw, const T* logits, const int32_t* chosen, int64_t n,
                    int E, int K, bool renormalise, const float* scale) {
  std::vector<T> p(static_cast<size_t>(E)), dp(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    const T mx = *std::max_element(logits + t * E, logits + (t + 1) * E);
    T denom = 0;
    for (int e = 0; e < E; ++e) denom += (p[e] = std::exp(logits[t * E + e] - mx));
    for (int e = 0; e < E; ++e) p[e] /= denom;
    T s = 0, gp = 0;
    for (int k = 0; k < K; ++k) {
      const int e = chosen[t * K + k];
      const T g = dw[t * K + k] * (scale ? T(scale[e]) : T(1));
      s += p[e];
      gp += g * p[e];
    }
    std::fill(dp.begin(), dp.end(), T(0));
    for (int k = 0; k < K; ++k) {
      const int e = chosen[t * K + k];
      const T g = dw[t * K + k] * (scale ? T(scale[e]) : T(1));
      dp[e] += renormalise ? g / s - gp / (s * s) : g;
    }
    T pdp = 0;
    for (int e = 0; e < E; ++e) pdp += p[e] * dp[e];
    for (int e = 0; e < E; ++e) dlogits[t * E + e] = p[e] * (dp[e] - pdp);
  }
}

// VJP of moe_forward w.r.t. both inputs: dxr (router input) and dxe (expert input) accumulate
// (they may be the same buffer when both inputs are). Gradients reach the router through the
// routing weights of the chosen experts (the choice itself is piecewise constant).
template <typename T>
void moe_backward(T* dxr, T* dxe, const T* dout, const T* xr, const T* xe, const T* router,
                  const std::vector<std::vector<T>>& gate, const std::vector<std::vector<T>>& up,
                  const std::vector<std::vector<T>>& down, int64_t n, int H, int E, int K, int I,
                  bool renormalise, const float* scale, Activation act) {
  std::vector<T> logits(static_cast<size_t>(n * E)), w(static_cast<size_t>(n * K));
  linear_forward(logits.data(), xr, router, n, H, E);
  const std::vector<int32_t> chosen = top_experts(logits.data(), n, E, K);
  route_weights(w.data(), logits.data(), chosen.data(), n, E, K, renormalise, scale);
  std::vector<T> g(static_cast<size_t>(I)), u(static_cast<size_t>(I)), m(static_cast<size_t>(I)),
      y(static_cast<size_t>(H)), dy(static_cast<size_t>(H)), dm(static_cast<size_t>(I)),
      dg(static_cast<size_t>(I)), du(static_cast<size_t>(I)), dw(static_cast<size_t>(n * K)),
      dlogits(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t)
    for (int k = 0; k < K; ++k) {
      const int e = chosen[t * K + k];
      linear_forward(g.data(), xe + t * H, gate[e].data(), 1, H, I);
      linear_forward(u.data(), xe + t * H, up[e].data(), 1, H, I);
      glu_forward(m.data(), g.data(), u.data(), I, act);
      linear_forward(y.data(), m.data(), down[e].data(), 1, I, H);
      T d = 0;
      for (int i = 0; i < H; ++i) d += dout[t * H + i] * y[i];
      dw[t * K + k] = d;
      for (int i = 0; i < H; ++i) dy[i] = w[t * K + k] * dout[t * H + i];
      std::fill(dm.begin(), dm.end(), T(0));
      linear_backward(dm.data(), dy.data(), down[e].data(), 1, I, H);
      glu_backward(dg.data(), du.data(), dm.data(), g.data(), u.data(), I, act);
      linear_backward(dxe + t * H, dg.data(), gate[e].data(), 1, H, I);
      linear_backward(dxe + t * H, du.data(), up[e].data(), 1, H, I);
    }
  route_backward(dlogits.data(), dw.data(), logits.data(), chosen.data(), n, E, K, renormalise,
                 scale);
  linear_backward(dxr, dlogits.data(), router, n, H, E);
}

}  // namespace temper::train::ref
