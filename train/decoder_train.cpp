// LoraModel's forward and backward over the generic decoder (Llama-style layers: pre-norm
// attention and gated MLP, see lora.cpp for the features checked). The forward runs the
// runtime's own kernels (rmsnorm/rope/glu/attention/matmul from runtime/forward), the backward
// their partners in train/kernels.h. Activation recomputation: the forward keeps only each
// layer's input; the backward recomputes one layer at a time from it.
//
// Glossary: n = tokens in the batch, H = d_model, NH/NKV/HD = heads/kv heads/head_dim,
// F = d_ff, r = rank. Per layer, with LoRA added to each targeted projection P(x):
//   h1 = rms(x; attn_norm); q, k, v = P(h1); q, k = rope(q, k); a = attn(q, k, v)
//   x2 = x + O(a); h2 = rms(x2; ffn_norm); m = act(G(h2)) ⊙ U(h2); out = x2 + D(m)
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "forward/layers.h"
#include "forward/matmul.h"
#include "forward/weights.h"
#include "train/decoder_train.h"
#include "train/kernels.h"

namespace temper::train {

namespace {

const forward::Matrix& projection(const forward::LayerWeights& W, Target t) {
  switch (t) {
    case Target::kQ: return W.wq;
    case Target::kK: return W.wk;
    case Target::kV: return W.wv;
    case Target::kO: return W.wo;
    case Target::kGate: return W.ffn_gate;
    case Target::kUp: return W.ffn_up;
    case Target::kDown: return W.ffn_down;
  }
  return W.wq;
}

}  // namespace

double LoraModel::run(const Batch& batch, float grad_scale, bool backward) {
  const ModelConfig& cfg = base_.config();
  const forward::Weights& w = base_.weights();
  Work& s = *work_;
  const int64_t n = int64_t(batch.tokens.size());
  if (n == 0) return 0;
  TEMPER_CHECK(batch.targets.size() == size_t(n) && batch.positions.size() == size_t(n) &&
                   batch.first_key.size() == size_t(n),
               "batch arrays differ in length");
  for (int64_t t = 0; t < n; ++t) {
    TEMPER_CHECK(batch.tokens[t] >= 0 && batch.tokens[t] < w.token_embd.rows, "token id ",
                 batch.tokens[t], " is outside the vocabulary (", w.token_embd.rows, ")");
    TEMPER_CHECK(batch.targets[t] < w.output.rows, "target id ", batch.targets[t],
                 " is outside the vocabulary (", w.output.rows, ")");
  }
  const int H = cfg.d_model, r = cfg_.rank;
  const float off = cfg.norm_weight_offset, eps = cfg.norm_eps, ls = cfg_.scale();
  const int32_t* pos = batch.positions.data();
  const int32_t* first_key = batch.first_key.data();

  s.layer_in.resize(size_t(cfg.n_layer) + 1);
  for (auto& b : s.layer_in) b.resize(size_t(n * H));
  s.u.resize(kNumTargets);
  for (auto& b : s.u) b.resize(size_t(n * r));
  int64_t qd = 0, kvd = 0, ff = 0, nh = 0;
  for (const LayerConfig& L : cfg.layers) {
    qd = std::max<int64_t>(qd, int64_t(L.n_head) * L.head_dim);
    kvd = std::max<int64_t>(kvd, int64_t(L.n_head_kv) * L.head_dim);
    ff = std::max<int64_t>(ff, L.d_ff);
    nh = std::max<int64_t>(nh, L.n_head);
  }
  for (auto* b : {&s.h1, &s.x2, &s.h2, &s.tmp, &s.dx, &s.dh}) b->resize(size_t(n * H));
  for (auto* b : {&s.q, &s.att, &s.dq, &s.datt}) b->resize(size_t(n * qd));
  for (auto* b : {&s.k, &s.v, &s.dk, &s.dv}) b->resize(size_t(n * kvd));
  for (auto* b : {&s.gate, &s.up, &s.act, &s.dgate, &s.dup, &s.dact}) b->resize(size_t(n * ff));
  s.lse.resize(size_t(n * nh));
  s.du.resize(size_t(n * r));

  // y (n, N) = x · Wᵀ (+ the adapter's s · (x Aᵀ) Bᵀ, keeping x Aᵀ for the backward).
  auto project = [&](int l, Target t, float* y, const float* x) {
    const forward::Matrix& m = projection(w.layers[l], t);
    forward::matmul_forward(y, x, m, n, m.rows, s.scratch);
    const int i = index_[l][int(t)];
    if (i >= 0) {
      const LoraPair& p = pairs_[i];
      lora_forward(y, p.out, s.u[int(t)].data(), x, p.a.data(), p.b.data(), ls, n, p.in, p.out,
                   r);
    }
  };
  // dx (n, K) (+)= dy · W, and the adapter's gradients (which accumulate into da, db).
  auto project_back = [&](int l, Target t, float* dx, const float* dy, const float* x,
                          bool accumulate) {
    const forward::Matrix& m = projection(w.layers[l], t);
    matmul_backward(dx, dy, m.rows, m, n, accumulate, s.scratch);
    const int i = index_[l][int(t)];
    if (i >= 0) {
      LoraPair& p = pairs_[i];
      lora_backward(dx, p.da.data(), p.db.data(), s.du.data(), dy, p.out, x, s.u[int(t)].data(),
                    p.a.data(), p.b.data(), ls, n, p.in, p.out, r);
    }
  };
  auto layer_forward = [&](int l, const float* x, float* out) {
    const LayerConfig& L = cfg.layers[l];
    const forward::LayerWeights& W = w.layers[l];
    const int64_t lqd = int64_t(L.n_head) * L.head_dim;
    forward::rmsnorm_forward(s.h1.data(), x, W.attn_norm.data(), off, n, H, eps);
    project(l, Target::kQ, s.q.data(), s.h1.data());
    project(l, Target::kK, s.k.data(), s.h1.data());
    project(l, Target::kV, s.v.data(), s.h1.data());
    forward::rope_forward(s.q.data(), pos, n, L.n_head, lqd, s.rope[l]);
    forward::rope_forward(s.k.data(), pos, n, L.n_head_kv, int64_t(L.n_head_kv) * L.head_dim,
                          s.rope[l]);
    const float scale = cfg.attn_scale != 0 ? cfg.attn_scale : 1.0f / std::sqrt(float(L.head_dim));
    forward::attention_forward_masked(s.att.data(), s.lse.data(), s.q.data(), s.k.data(),
                                      s.v.data(), first_key, n, 0, L.n_head, L.n_head_kv,
                                      L.head_dim, L.window, scale);
    project(l, Target::kO, s.tmp.data(), s.att.data());
    for (int64_t i = 0; i < n * H; ++i) s.x2[i] = x[i] + s.tmp[i];
    forward::rmsnorm_forward(s.h2.data(), s.x2.data(), W.ffn_norm.data(), off, n, H, eps);
    project(l, Target::kGate, s.gate.data(), s.h2.data());
    project(l, Target::kUp, s.up.data(), s.h2.data());
    forward::glu_forward(s.act.data(), s.gate.data(), s.up.data(), n * L.d_ff, cfg.act);
    project(l, Target::kDown, s.tmp.data(), s.act.data());
    for (int64_t i = 0; i < n * H; ++i) out[i] = s.x2[i] + s.tmp[i];
  };
  // dx: dL/d(layer output) on entry, dL/d(layer input) on return.
  auto layer_backward = [&](int l, const float* x) {
    const LayerConfig& L = cfg.layers[l];
    const forward::LayerWeights& W = w.layers[l];
    const int64_t lqd = int64_t(L.n_head) * L.head_dim, lkvd = int64_t(L.n_head_kv) * L.head_dim;
    // MLP
    project_back(l, Target::kDown, s.dact.data(), s.dx.data(), s.act.data(), false);
    glu_backward(s.dgate.data(), s.dup.data(), s.dact.data(), s.gate.data(), s.up.data(),
                 n * L.d_ff, cfg.act);
    project_back(l, Target::kGate, s.dh.data(), s.dgate.data(), s.h2.data(), false);
    project_back(l, Target::kUp, s.dh.data(), s.dup.data(), s.h2.data(), true);
    rmsnorm_backward(s.dx.data(), s.dh.data(), s.x2.data(), W.ffn_norm.data(), off, n, H, eps);
    // attention
    project_back(l, Target::kO, s.datt.data(), s.dx.data(), s.att.data(), false);
    const float scale = cfg.attn_scale != 0 ? cfg.attn_scale : 1.0f / std::sqrt(float(L.head_dim));
    attention_backward(s.dq.data(), s.dk.data(), s.dv.data(), s.datt.data(), s.q.data(),
                       s.k.data(), s.v.data(), s.att.data(), s.lse.data(), first_key, n, L.n_head,
                       L.n_head_kv, L.head_dim, L.window, scale);
    rope_backward(s.dq.data(), pos, n, L.n_head, lqd, s.rope[l]);
    rope_backward(s.dk.data(), pos, n, L.n_head_kv, lkvd, s.rope[l]);
    project_back(l, Target::kQ, s.dh.data(), s.dq.data(), s.h1.data(), false);
    project_back(l, Target::kK, s.dh.data(), s.dk.data(), s.h1.data(), true);
    project_back(l, Target::kV, s.dh.data(), s.dv.data(), s.h1.data(), true);
    rmsnorm_backward(s.dx.data(), s.dh.data(), x, W.attn_norm.data(), off, n, H, eps);
  };

  // Embeddings, then the layers keeping each one's input.
  for (int64_t t = 0; t < n; ++t) {
    float* xt = &s.layer_in[0][t * H];
    forward::matrix_row(xt, w.token_embd, batch.tokens[t]);
    if (cfg.embed_scale != 0)
      for (int i = 0; i < H; ++i) xt[i] *= base_.embed_scale();
  }
  for (int l = 0; l < cfg.n_layer; ++l)
    layer_forward(l, s.layer_in[l].data(), s.layer_in[l + 1].data());
  // Output: final norm, then the fused cross-entropy (its gradient is dL/dh, scaled).
  const float* x_last = s.layer_in[cfg.n_layer].data();
  forward::rmsnorm_forward(s.h1.data(), x_last, w.output_norm.data(), off, n, H, eps);
  const double loss = cross_entropy(s.dh.data(), s.h1.data(), w.output, batch.targets.data(), n,
                                    cfg.final_softcap, grad_scale, s.scratch);
  if (!backward) return loss;
  std::fill(s.dx.begin(), s.dx.end(), 0.0f);
  rmsnorm_backward(s.dx.data(), s.dh.data(), x_last, w.output_norm.data(), off, n, H, eps);
  for (int l = cfg.n_layer - 1; l >= 0; --l) {
    // Recompute the layer (fills h1 ... act and u; rewrites layer_in[l + 1] with the same values).
    layer_forward(l, s.layer_in[l].data(), s.layer_in[l + 1].data());
    layer_backward(l, s.layer_in[l].data());
  }
  return loss;
}

}  // namespace temper::train
