// Backward of the mixture-of-experts block (see kernels.h): the routing and each expert's
// activations are recomputed with the runtime's own kernels (forward::route_tokens,
// matmul_forward, glu_forward), then the gradient flows back through each chosen expert (a
// GEMM per expert over the rows routed to it) and through the routing weights into the router
// logits, and into the adapters on the experts when there are any. Expert weights are frozen
// and never get a gradient.
#include <cmath>
#include <cstring>

#include "forward/layers.h"
#include "forward/matmul.h"
#include "train/kernels.h"
#include "train/ref/backward_scalar.h"

namespace temper::train {

void route_backward(float* dlogits, const float* dw, const float* logits,
                    const forward::Routing& r, int64_t n, int E, int K, bool renormalise,
                    const std::vector<float>& expert_scale) {
  // Per token: E + K values; the double scalar formula is the kernel (it is O(n E), nothing
  // to gain from a second fp32 copy of it).
  std::vector<double> z(static_cast<size_t>(E)), d(static_cast<size_t>(E)),
      g(static_cast<size_t>(K));
  for (int64_t t = 0; t < n; ++t) {
    for (int e = 0; e < E; ++e) z[e] = logits[t * E + e];
    for (int k = 0; k < K; ++k) g[k] = dw[t * K + k];
    ref::route_backward(d.data(), g.data(), z.data(), &r.expert[t * K], 1, E, K, renormalise,
                        expert_scale.empty() ? nullptr : expert_scale.data());
    for (int e = 0; e < E; ++e) dlogits[t * E + e] = float(d[e]);
  }
}

forward::ExpertHook ExpertAdapters::hook() const {
  return [this](int e, forward::ExpertProj which, float* y, const float* x, int64_t n) {
    const LoraPair* p = which == forward::ExpertProj::kGate ? gate[e]
                        : which == forward::ExpertProj::kUp ? up[e]
                                                            : down[e];
    if (!p) return;
    std::vector<float> u(size_t(n * rank));
    lora_forward(y, p->out, u.data(), x, p->a.data(), p->b.data(), scale, n, p->in, p->out, rank);
  };
}

void moe_backward(float* drouter_in, float* dexpert_in, const float* dout, const float* router_in,
                  const float* expert_in, const forward::LayerWeights& w,
                  const LayerConfig& layer, int64_t n, int H, Activation act, bool renormalise,
                  std::vector<float>& scratch, const ExpertAdapters* adapters) {
  const int E = layer.n_expert, K = layer.n_expert_used, I = layer.d_ff_expert;
  std::vector<float> logits(size_t(n * E));
  forward::matmul_forward(logits.data(), router_in, w.router, n, E, scratch);
  const forward::Routing r =
      forward::route_tokens(logits.data(), n, E, K, renormalise, w.expert_scale);
  std::vector<float> dw(size_t(n * K), 0.0f), dlogits(size_t(n * E));
  std::vector<int64_t> rows;  // (token * K + slot) routed to the current expert
  std::vector<float> xin, gate, up, m, y, dy, dm, dgate, dup, dxin;
  std::vector<float> u_gate, u_up, u_down, du;  // adapters: x Aᵀ per projection, scratch
  const int rank = adapters ? adapters->rank : 0;
  // The expert's adapter p on a projection (or none): y += s (x Aᵀ) Bᵀ keeping x Aᵀ in u.
  auto lora_fwd = [&](const LoraPair* p, float* y, std::vector<float>& u, const float* x,
                      int64_t ne) {
    if (!p) return;
    u.resize(size_t(ne * rank));
    lora_forward(y, p->out, u.data(), x, p->a.data(), p->b.data(), adapters->scale, ne, p->in,
                 p->out, rank);
  };
  auto lora_bwd = [&](LoraPair* p, float* dx, const float* dyy, const float* x,
                      const std::vector<float>& u, int64_t ne) {
    if (!p) return;
    du.resize(size_t(ne * rank));
    lora_backward(dx, p->da.data(), p->db.data(), du.data(), dyy, p->out, x, u.data(),
                  p->a.data(), p->b.data(), adapters->scale, ne, p->in, p->out, rank);
  };
  for (int e = 0; e < E; ++e) {
    rows.clear();
    for (int64_t i = 0; i < n * K; ++i)
      if (r.expert[i] == e) rows.push_back(i);
    if (rows.empty()) continue;
    const int64_t ne = int64_t(rows.size());
    const forward::ExpertWeights& ew = w.experts[e];
    const forward::Matrix wg = ew.gate_up ? ew.gate_up.slice_rows(0, I) : ew.gate;
    const forward::Matrix wu = ew.gate_up ? ew.gate_up.slice_rows(I, I) : ew.up;
    xin.resize(size_t(ne * H));
    for (int64_t j = 0; j < ne; ++j)
      std::memcpy(&xin[j * H], expert_in + (rows[j] / K) * H, sizeof(float) * H);
    for (auto* b : {&gate, &up, &m, &dm, &dgate, &dup}) b->resize(size_t(ne * I));
    for (auto* b : {&y, &dy, &dxin}) b->resize(size_t(ne * H));
    LoraPair* pg = adapters ? adapters->gate[e] : nullptr;
    LoraPair* pu = adapters ? adapters->up[e] : nullptr;
    LoraPair* pd = adapters ? adapters->down[e] : nullptr;
    forward::matmul_forward(gate.data(), xin.data(), wg, ne, I, scratch);
    lora_fwd(pg, gate.data(), u_gate, xin.data(), ne);
    forward::matmul_forward(up.data(), xin.data(), wu, ne, I, scratch);
    lora_fwd(pu, up.data(), u_up, xin.data(), ne);
    forward::glu_forward(m.data(), gate.data(), up.data(), ne * I, act);
    forward::matmul_forward(y.data(), m.data(), ew.down, ne, H, scratch);
    lora_fwd(pd, y.data(), u_down, m.data(), ne);
    for (int64_t j = 0; j < ne; ++j) {
      const float* go = dout + (rows[j] / K) * H;
      double d = 0;
      for (int i = 0; i < H; ++i) d += double(go[i]) * y[j * H + i];
      dw[rows[j]] = float(d);
      const float wgt = r.weight[rows[j]];
      for (int i = 0; i < H; ++i) dy[j * H + i] = wgt * go[i];
    }
    matmul_backward(dm.data(), dy.data(), H, ew.down, ne, false, scratch);
    lora_bwd(pd, dm.data(), dy.data(), m.data(), u_down, ne);
    glu_backward(dgate.data(), dup.data(), dm.data(), gate.data(), up.data(), ne * I, act);
    matmul_backward(dxin.data(), dgate.data(), I, wg, ne, false, scratch);
    lora_bwd(pg, dxin.data(), dgate.data(), xin.data(), u_gate, ne);
    matmul_backward(dxin.data(), dup.data(), I, wu, ne, true, scratch);
    lora_bwd(pu, dxin.data(), dup.data(), xin.data(), u_up, ne);
    for (int64_t j = 0; j < ne; ++j) {
      float* dst = dexpert_in + (rows[j] / K) * H;
      for (int i = 0; i < H; ++i) dst[i] += dxin[j * H + i];
    }
  }
  route_backward(dlogits.data(), dw.data(), logits.data(), r, n, E, K, renormalise,
                 w.expert_scale);
  matmul_backward(drouter_in, dlogits.data(), E, w.router, n, true, scratch);
}

}  // namespace temper::train
