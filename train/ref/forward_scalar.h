// Scalar references of the training forward pass: plain loops templated on the float type T
// (double for finite-difference checks), no OpenMP, no BLAS, no tricks. Paired one-to-one with
// the vector-Jacobian products in backward_scalar.h; the fast fp32 kernels (runtime/forward
// and train/kernels.h) are tested against these. Never optimise them.
//
// Dimension glossary: n = tokens, K = input features, N = output features, r = LoRA rank,
// D = row length, NH/NKV = query/key-value heads, HD = head_dim, H = d_model, V = vocab.
// Matrices are row-major; W (N, K) as stored (y = x · Wᵀ).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <vector>

#include "forward/kernels.h"
#include "model/config.h"

namespace temper::train::ref {

template <typename T> T silu(T x) { return x / (T(1) + std::exp(-x)); }
template <typename T> T gelu_tanh(T x) {
  const T k = std::sqrt(T(2) / T(std::numbers::pi));
  return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}
template <typename T> T activation(T x, Activation act) {
  return act == Activation::kSilu ? silu(x) : gelu_tanh(x);
}

// y (n, N) = x (n, K) · Wᵀ.
template <typename T>
void linear_forward(T* y, const T* x, const T* w, int64_t n, int64_t K, int64_t N) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t o = 0; o < N; ++o) {
      T acc = 0;
      for (int64_t i = 0; i < K; ++i) acc += x[t * K + i] * w[o * K + i];
      y[t * N + o] = acc;
    }
}

// y (n, N) += s · (x · Aᵀ) · Bᵀ with A (r, K), B (N, r) (PEFT's lora_A / lora_B weights).
template <typename T>
void lora_forward(T* y, const T* x, const T* a, const T* b, T s, int64_t n, int64_t K, int64_t N,
                  int r) {
  std::vector<T> u(static_cast<size_t>(r));
  for (int64_t t = 0; t < n; ++t) {
    for (int j = 0; j < r; ++j) {
      T acc = 0;
      for (int64_t i = 0; i < K; ++i) acc += x[t * K + i] * a[j * K + i];
      u[j] = acc;
    }
    for (int64_t o = 0; o < N; ++o) {
      T acc = 0;
      for (int j = 0; j < r; ++j) acc += u[j] * b[o * r + j];
      y[t * N + o] += s * acc;
    }
  }
}

// out = inp · (mean(inp²) + eps)^-½ · (offset + weight) per row (weight nullptr: unweighted).
template <typename T>
void rmsnorm_forward(T* out, const T* inp, const float* weight, T offset, int64_t n_rows,
                     int dim, T eps) {
  for (int64_t r = 0; r < n_rows; ++r) {
    T ss = 0;
    for (int i = 0; i < dim; ++i) ss += inp[r * dim + i] * inp[r * dim + i];
    const T rstd = T(1) / std::sqrt(ss / T(dim) + eps);
    for (int i = 0; i < dim; ++i)
      out[r * dim + i] = inp[r * dim + i] * rstd * (weight ? offset + T(weight[i]) : T(1));
  }
}

// RoPE in place, rotating by `sign` × the position's angles (sign -1 is the inverse rotation).
template <typename T>
void rope_rotate(T* x, const int32_t* pos, int64_t n, int n_head, int64_t row_stride,
                 const forward::RopeParams& p, int sign) {
  const int half = p.n_rot / 2;
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < n_head; ++h) {
      T* v = x + t * row_stride + int64_t(h) * p.head_dim;
      for (int j = 0; j < half; ++j) {
        const double angle = sign * double(pos[t]) * double(p.pos_scale) * p.inv_freq[j];
        // The scaled rotation's transpose is the same scale times the inverse rotation.
        const T c = T(std::cos(angle) * p.mscale), s = T(std::sin(angle) * p.mscale);
        const int a = p.style == RopeStyle::kHalf ? j : 2 * j;
        const int b = p.style == RopeStyle::kHalf ? j + half : 2 * j + 1;
        const T va = v[a], vb = v[b];
        v[a] = va * c - vb * s;
        v[b] = vb * c + va * s;
      }
    }
}
template <typename T>
void rope_forward(T* x, const int32_t* pos, int64_t n, int n_head, int64_t row_stride,
                  const forward::RopeParams& p) {
  rope_rotate(x, pos, n, n_head, row_stride, p, +1);
}

// Key j is visible to query i iff j <= i, both belong to the same example (segment[i] ==
// segment[j]; segment nullptr = one example) and, with window > 0, i - j < window.
inline bool key_visible(int64_t i, int64_t j, const int32_t* segment, int window) {
  if (j > i) return false;
  if (segment && segment[i] != segment[j]) return false;
  return window <= 0 || i - j < window;
}

// p[j] = softmax over visible keys j of scale · q_i,h · k_j (query i, head h reading KV head
// at offset ko); invisible keys are left untouched and must be skipped by the caller.
template <typename T>
void attention_probs(T* p, const T* q, const T* k, const int32_t* segment, int64_t i, int64_t qo,
                     int64_t ko, int64_t n, int64_t kvs, int HD, int window, T scale) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    if (!key_visible(i, j, segment, window)) continue;
    T dot = 0;
    for (int d = 0; d < HD; ++d) dot += q[qo + d] * k[j * kvs + ko + d];
    p[j] = dot * scale;
    mx = std::max(mx, p[j]);
  }
  T denom = 0;
  for (int64_t j = 0; j < n; ++j)
    if (key_visible(i, j, segment, window)) denom += (p[j] = std::exp(p[j] - mx));
  for (int64_t j = 0; j < n; ++j)
    if (key_visible(i, j, segment, window)) p[j] /= denom;
}

// Causal GQA attention of n tokens on their own K/V: query head h reads KV head
// h / (NH / NKV).
template <typename T>
void attention_forward(T* out, const T* q, const T* k, const T* v, const int32_t* segment,
                       int64_t n, int NH, int NKV, int HD, int window, T scale) {
  const int64_t qs = int64_t(NH) * HD, kvs = int64_t(NKV) * HD;
  std::vector<T> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    for (int h = 0; h < NH; ++h) {
      const int64_t ko = int64_t(h / (NH / NKV)) * HD, qo = i * qs + h * HD;
      attention_probs(p.data(), q, k, segment, i, qo, ko, n, kvs, HD, window, scale);
      for (int d = 0; d < HD; ++d) {
        T acc = 0;
        for (int64_t j = 0; j < n; ++j)
          if (key_visible(i, j, segment, window)) acc += p[j] * v[j * kvs + ko + d];
        out[qo + d] = acc;
      }
    }
}

// out = act(gate) · up.
template <typename T>
void glu_forward(T* out, const T* gate, const T* up, int64_t n, Activation act) {
  for (int64_t i = 0; i < n; ++i) out[i] = activation(gate[i], act) * up[i];
}

// Router weights given each token's chosen experts (top-k is piecewise constant, so the choice
// is an input): w_k = p_{e_k} (/ Σ_j p_{e_j} when renormalised) · scale_{e_k} (scale nullptr:
// 1), p = softmax(logits). logits (n, E), chosen and w (n, K).
template <typename T>
void route_weights(T* w, const T* logits, const int32_t* chosen, int64_t n, int E, int K,
                   bool renormalise, const float* scale) {
  std::vector<T> p(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    const T mx = *std::max_element(logits + t * E, logits + (t + 1) * E);
    T denom = 0;
    for (int e = 0; e < E; ++e) denom += (p[e] = std::exp(logits[t * E + e] - mx));
    T sum = 0;
    for (int k = 0; k < K; ++k) sum += p[chosen[t * K + k]] / denom;
    for (int k = 0; k < K; ++k) {
      const int e = chosen[t * K + k];
      T v = p[e] / denom;
      if (renormalise) v /= sum;
      w[t * K + k] = v * (scale ? T(scale[e]) : T(1));
    }
  }
}

// The K largest logits of each token (ties: lower index), in descending order: the experts
// forward::route_tokens chooses (softmax is monotonic).
template <typename T>
std::vector<int32_t> top_experts(const T* logits, int64_t n, int E, int K) {
  std::vector<int32_t> chosen(static_cast<size_t>(n * K));
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    for (int e = 0; e < E; ++e) order[e] = e;
    const T* z = logits + t * E;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[a] > z[b]; });
    for (int k = 0; k < K; ++k) chosen[t * K + k] = order[k];
  }
  return chosen;
}

// One mixture-of-experts block: out (n, H) = Σ_k w_k · down_e(act(gate_e · xe) ⊙ (up_e · xe))
// over the experts chosen from the router logits xr · Routerᵀ. router (E, H); gate[e], up[e]
// (I, H); down[e] (H, I).
template <typename T>
void moe_forward(T* out, const T* xr, const T* xe, const T* router,
                 const std::vector<std::vector<T>>& gate, const std::vector<std::vector<T>>& up,
                 const std::vector<std::vector<T>>& down, int64_t n, int H, int E, int K, int I,
                 bool renormalise, const float* scale, Activation act) {
  std::vector<T> logits(static_cast<size_t>(n * E)), w(static_cast<size_t>(n * K));
  linear_forward(logits.data(), xr, router, n, H, E);
  const std::vector<int32_t> chosen = top_experts(logits.data(), n, E, K);
  route_weights(w.data(), logits.data(), chosen.data(), n, E, K, renormalise, scale);
  std::vector<T> g(static_cast<size_t>(I)), u(static_cast<size_t>(I)), y(static_cast<size_t>(H));
  std::fill(out, out + n * H, T(0));
  for (int64_t t = 0; t < n; ++t)
    for (int k = 0; k < K; ++k) {
      const int e = chosen[t * K + k];
      linear_forward(g.data(), xe + t * H, gate[e].data(), 1, H, I);
      linear_forward(u.data(), xe + t * H, up[e].data(), 1, H, I);
      glu_forward(g.data(), g.data(), u.data(), I, act);
      linear_forward(y.data(), g.data(), down[e].data(), 1, I, H);
      for (int i = 0; i < H; ++i) out[t * H + i] += w[t * K + k] * y[i];
    }
}

// Sum over tokens with target >= 0 of -log softmax(z)[target], z = softcap(h · Wᵀ)
// (softcap c: z = c · tanh(logit / c); c == 0: none). h (n, H), W (V, H).
template <typename T>
T cross_entropy_forward(const T* h, const T* w, const int32_t* target, int64_t n, int64_t H,
                        int64_t V, T softcap) {
  std::vector<T> z(static_cast<size_t>(V));
  T loss = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (target[t] < 0) continue;
    linear_forward(z.data(), h + t * H, w, 1, H, V);
    if (softcap != 0)
      for (T& x : z) x = softcap * std::tanh(x / softcap);
    const T mx = *std::max_element(z.begin(), z.end());
    T denom = 0;
    for (T x : z) denom += std::exp(x - mx);
    loss += mx + std::log(denom) - z[size_t(target[t])];
  }
  return loss;
}

}  // namespace temper::train::ref
