// Mixture of experts (see layers.h): route every token, then run each expert once on the
// rows routed to it (a GEMM per expert), and sum each token's expert outputs in routing
// order so the result does not depend on how tokens are batched beyond sgemm rounding.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "forward/kernels.h"
#include "forward/layers.h"
#include "forward/matmul.h"

namespace temper::forward {

Routing route_tokens(const float* router_logits, int64_t n_tokens, int n_expert, int n_used,
                     bool renormalise, const std::vector<float>& expert_scale) {
  Routing r;
  r.expert.resize(size_t(n_tokens * n_used));
  r.weight.resize(size_t(n_tokens * n_used));
  std::vector<float> probs(n_expert);
  std::vector<int32_t> order(n_expert);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::copy_n(router_logits + t * n_expert, n_expert, probs.data());
    softmax_forward(probs.data(), 1, n_expert);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + n_used, order.end(), [&](int a, int b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    double sum = 0;
    for (int k = 0; k < n_used; ++k) sum += probs[order[k]];
    for (int k = 0; k < n_used; ++k) {
      const int e = order[k];
      double wgt = probs[e];
      if (renormalise) wgt /= sum;
      if (!expert_scale.empty()) wgt *= expert_scale[e];
      r.expert[t * n_used + k] = e;
      r.weight[t * n_used + k] = float(wgt);
    }
  }
  return r;
}

void moe_forward(float* out, const float* router_in, const float* expert_in, const LayerWeights& w,
                 const LayerConfig& layer, int64_t n_tokens, int d_model, Activation act,
                 bool renormalise, std::vector<float>& scratch, const ExpertHook& hook) {
  const int E = layer.n_expert, K = layer.n_expert_used, I = layer.d_ff_expert;
  std::vector<float> logits(size_t(n_tokens * E));
  matmul_forward(logits.data(), router_in, w.router, n_tokens, E, scratch);
  const Routing r = route_tokens(logits.data(), n_tokens, E, K, renormalise, w.expert_scale);

  // Per (token, slot) output of the chosen expert, already weighted.
  std::vector<float> slot_out(size_t(n_tokens * K * d_model));
  std::vector<int64_t> rows;  // (token * K + slot) routed to the current expert
  std::vector<float> xin, gate, up, down;
  for (int e = 0; e < E; ++e) {
    rows.clear();
    for (int64_t i = 0; i < n_tokens * K; ++i)
      if (r.expert[i] == e) rows.push_back(i);
    if (rows.empty()) continue;
    const int64_t n = int64_t(rows.size());
    xin.resize(size_t(n * d_model));
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(&xin[j * d_model], expert_in + (rows[j] / K) * d_model, sizeof(float) * d_model);
    const ExpertWeights& ew = w.experts[e];
    gate.resize(size_t(n * I));
    up.resize(size_t(n * I));
    if (ew.gate_up) {
      // Fused rows: [0, I) gate, [I, 2I) up.
      std::vector<float> gu(size_t(n * 2 * I));
      matmul_forward(gu.data(), xin.data(), ew.gate_up, n, 2 * I, scratch);
      for (int64_t j = 0; j < n; ++j) {
        std::memcpy(&gate[j * I], &gu[j * 2 * I], sizeof(float) * I);
        std::memcpy(&up[j * I], &gu[j * 2 * I + I], sizeof(float) * I);
      }
    } else {
      matmul_forward(gate.data(), xin.data(), ew.gate, n, I, scratch);
      matmul_forward(up.data(), xin.data(), ew.up, n, I, scratch);
    }
    if (hook) {
      hook(e, ExpertProj::kGate, gate.data(), xin.data(), n);
      hook(e, ExpertProj::kUp, up.data(), xin.data(), n);
    }
    glu_forward(gate.data(), gate.data(), up.data(), n * I, act);
    down.resize(size_t(n * d_model));
    matmul_forward(down.data(), gate.data(), ew.down, n, d_model, scratch);
    if (hook) hook(e, ExpertProj::kDown, down.data(), gate.data(), n);
    for (int64_t j = 0; j < n; ++j) {
      const float wgt = r.weight[rows[j]];
      float* dst = &slot_out[rows[j] * d_model];
      for (int i = 0; i < d_model; ++i) dst[i] = wgt * down[j * d_model + i];
    }
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* o = out + t * d_model;
    std::fill(o, o + d_model, 0.0f);
    for (int k = 0; k < K; ++k) {
      const float* s = &slot_out[(t * K + k) * d_model];
      for (int i = 0; i < d_model; ++i) o[i] += s[i];
    }
  }
}

}  // namespace temper::forward
