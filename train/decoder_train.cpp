// LoraModel's forward and backward over the generic decoder, feature by feature as the
// runtime's Session::eval runs it (runtime/forward/decoder.cpp): the forward calls the
// runtime's own kernels and blocks (embed_tokens, per_layer_inputs, rmsnorm/rope/glu/
// attention/matmul, router_input, moe_forward), the backward their partners in
// train/kernels.h. Activation recomputation (the default): the forward keeps each layer's input
// (and the K/V other layers read); the backward recomputes one layer at a time from it. With
// recomputation off the forward keeps every layer's activations and the backward reads them:
// the same kernels on the same inputs in the same order, so the same bits, ~1/3 less work.
//
// Glossary: n = tokens in the batch, H = d_model, NH/NKV/HD = heads/kv heads/head_dim,
// F = d_ff, P = ple_dim, r = rank. Per layer, with LoRA added to each targeted projection P(x)
// and every bracketed step present only when the model has it:
//   h1 = rms(x; attn_norm); q = [rms](Q(h1)); q = rope(q)
//   owner of K/V: k_raw = K(h1); v_raw = V(h1) or k_raw (k_eq_v); kc = rope([rms](k_raw));
//                 vc = [rms](v_raw); readers use the owner's kc, vc
//   a_raw = O(attn(q, kc, vc)); x2 = x + [rms](a_raw); h2 = rms(x2; ffn_norm)
//   dense: md = D(act(G(h2)) ⊙ U(h2)); experts only: m = moe(h2, h2)
//   experts beside the MLP: m = rms(md; n1) + rms(moe(z, ex_in); n2), z = router_input(x2),
//                 ex_in = [rms](x2; pre_2)
//   x3 = x2 + [rms](m); [PLE: x3 += rms(Wp(act(Wg x3) ⊙ ple_l); post)]; out = x3 · [scalar]
#include <algorithm>
#include <cmath>
#include <cstdint>

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
    case Target::kExpertGate: case Target::kExpertUp: case Target::kExpertDown:
      break;  // adapters on experts run inside the MoE block (ExpertAdapters)
  }
  return W.wq;
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
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
  // The rotations use LongRoPE's short factors (LoraModel), HF's choice for an example of at
  // most rope_long_after tokens; a longer one would need the long factors.
  int32_t max_position = INT32_MAX;
  for (const LayerConfig& L : cfg.layers)
    if (!L.rope_freq_factors_long.empty()) max_position = std::min(max_position, int32_t(L.rope_long_after) - 1);
  for (int64_t t = 0; t < n; ++t) {
    TEMPER_CHECK(batch.tokens[t] >= 0 && batch.tokens[t] < w.token_embd.rows, "token id ",
                 batch.tokens[t], " is outside the vocabulary (", w.token_embd.rows, ")");
    TEMPER_CHECK(batch.targets[t] < w.output.rows, "target id ", batch.targets[t],
                 " is outside the vocabulary (", w.output.rows, ")");
    TEMPER_CHECK(batch.positions[t] <= max_position, "training example longer than the ", max_position + 1,
                 " tokens LongRoPE's short factors cover (original_max_position_embeddings)");
  }
  const int H = cfg.d_model, r = cfg_.rank, P = cfg.ple_dim;
  const int64_t nH = n * H, ple_w = int64_t(cfg.n_layer) * P;
  const float off = cfg.norm_weight_offset, eps = cfg.norm_eps, ls = cfg_.scale();
  const int32_t* pos = batch.positions.data();
  const int32_t* first_key = batch.first_key.data();
  auto kv_src = [&](int l) {
    const int k = cfg.layers[l].kv_source_layer;
    return k < 0 ? l : k;
  };

  s.layer_in.resize(size_t(cfg.n_layer) + 1);
  for (auto& b : s.layer_in) b.resize(size_t(nH));
  int64_t qd = 0, kvd = 0, ff = 0, nh = 0;
  for (const LayerConfig& L : cfg.layers) {
    qd = std::max<int64_t>(qd, int64_t(L.n_head) * L.head_dim);
    kvd = std::max<int64_t>(kvd, int64_t(L.n_head_kv) * L.head_dim);
    ff = std::max<int64_t>(ff, L.d_ff);
    nh = std::max<int64_t>(nh, L.n_head);
  }
  for (auto* b : {&s.tmp, &s.dx, &s.dh, &s.dx2, &s.dm, &s.dt}) b->resize(size_t(nH));
  // Buffers of blocks only some models have.
  bool beside = false;  // experts beside a dense MLP
  for (const LayerConfig& L : cfg.layers) beside = beside || L.ffn == FfnKind::kDenseAndMoe;
  for (auto* b : {&s.dz, &s.dex}) b->resize(beside ? size_t(nH) : 0);
  for (auto* b : {&s.dq, &s.datt}) b->resize(size_t(n * qd));
  for (auto* b : {&s.dk, &s.dv}) b->resize(size_t(n * kvd));
  for (auto* b : {&s.dgate, &s.dup, &s.dact}) b->resize(size_t(n * ff));
  for (auto* b : {&s.dp, &s.dpg, &s.dple}) b->resize(size_t(n * P));
  s.du.resize(size_t(n * r));
  // Activations: one set reused by every layer (recomputed in the backward), or one per layer
  // kept from the forward. Steady state allocates nothing: the sizes repeat from step to step
  // up to n.
  const bool keep = keep_activations_ && backward;
  s.acts.resize(keep ? size_t(cfg.n_layer) : 1);
  for (LayerActivations& a : s.acts) {
    for (auto* b : {&a.h1, &a.a_raw, &a.x2, &a.h2, &a.md, &a.m}) b->resize(size_t(nH));
    for (auto* b : {&a.z, &a.ex_in, &a.m2}) b->resize(beside ? size_t(nH) : 0);
    a.pp.resize(P > 0 ? size_t(nH) : 0);
    for (auto* b : {&a.q_raw, &a.q, &a.att}) b->resize(size_t(n * qd));
    for (auto* b : {&a.k_raw, &a.v_raw, &a.kc, &a.vc}) b->resize(size_t(n * kvd));
    for (auto* b : {&a.gate, &a.up, &a.act}) b->resize(size_t(n * ff));
    for (auto* b : {&a.pg, &a.pa, &a.ple_l}) b->resize(size_t(n * P));
    a.lse.resize(size_t(n * nh));
    a.u.resize(kNumTargets);
    for (auto& b : a.u) b.resize(size_t(n * r));
  }
  auto acts = [&](int l) -> LayerActivations& { return s.acts[keep ? size_t(l) : 0]; };
  // K/V slots: one per layer whose K/V other layers read (kept for the whole pass); slot 0
  // for the layers only they read: its K/V live in the layer's activations, its gradient in
  // the shared dkc[0], dvc[0].
  std::vector<int> slot(size_t(cfg.n_layer), 0);
  std::vector<bool> donor(size_t(cfg.n_layer), false);
  for (int l = 0; l < cfg.n_layer; ++l)
    if (kv_src(l) != l) donor[size_t(kv_src(l))] = true;
  int n_slots = 1;
  for (int l = 0; l < cfg.n_layer; ++l)
    if (donor[size_t(l)]) slot[size_t(l)] = n_slots++;
  for (int l = 0; l < cfg.n_layer; ++l) slot[size_t(l)] = slot[size_t(kv_src(l))];
  for (auto* v : {&s.kc, &s.vc, &s.dkc, &s.dvc}) {
    v->resize(size_t(n_slots));
    for (size_t i = 0; i < v->size(); ++i)
      (*v)[i].resize(i == 0 && (v == &s.kc || v == &s.vc) ? 0 : size_t(n * kvd));
  }
  auto kc_of = [&](int l) {
    return slot[l] > 0 ? s.kc[size_t(slot[l])].data() : acts(l).kc.data();
  };
  auto vc_of = [&](int l) {
    return slot[l] > 0 ? s.vc[size_t(slot[l])].data() : acts(l).vc.data();
  };

  // B in the base's row order where it differs from HF's.
  s.b_base.resize(pairs_.size());
  s.db_base.resize(pairs_.size());
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const std::vector<int32_t>& hf = hf_row_[i];
    if (hf.empty()) continue;
    const LoraPair& p = pairs_[i];
    s.b_base[i].resize(p.b.size());
    s.db_base[i].resize(p.b.size());
    for (int64_t o = 0; o < p.out; ++o)
      std::copy_n(&p.b[size_t(hf[o]) * r], r, &s.b_base[i][size_t(o) * r]);
  }

  // The seven projections' base products in bf16 (gemm_bf16.h) or f32; the rest (PLE, MoE,
  // the output head in cross_entropy) stays f32.
  const bool bf16 = cfg_.precision == Precision::kBf16;
  // y (n, N) = x · Wᵀ (+ the adapter's s · (x Aᵀ) Bᵀ, keeping x Aᵀ for the backward).
  auto project = [&](int l, Target t, float* y, const float* x) {
    const forward::Matrix& m = projection(w.layers[l], t);
    if (bf16)
      matmul_forward_bf16(y, x, m, n, m.rows, s.bf16);
    else
      forward::matmul_forward(y, x, m, n, m.rows, s.scratch);
    const int i = index_[l][int(t)];
    if (i >= 0) {
      const LoraPair& p = pairs_[i];
      const float* b = hf_row_[i].empty() ? p.b.data() : s.b_base[i].data();
      lora_forward(y, p.out, acts(l).u[int(t)].data(), x, p.a.data(), b, ls, n, p.in, p.out, r);
    }
  };
  // dx (n, K) (+)= dy · W, and the adapter's gradients (which accumulate into da, db).
  auto project_back = [&](int l, Target t, float* dx, const float* dy, const float* x,
                          bool accumulate) {
    const forward::Matrix& m = projection(w.layers[l], t);
    if (bf16)
      matmul_backward_bf16(dx, dy, m.rows, m, n, accumulate, s.bf16);
    else
      matmul_backward(dx, dy, m.rows, m, n, accumulate, s.scratch);
    const int i = index_[l][int(t)];
    if (i >= 0) {
      LoraPair& p = pairs_[i];
      const std::vector<int32_t>& hf = hf_row_[i];
      if (hf.empty()) {
        lora_backward(dx, p.da.data(), p.db.data(), s.du.data(), dy, p.out, x,
                      acts(l).u[int(t)].data(), p.a.data(), p.b.data(), ls, n, p.in, p.out, r);
        return;
      }
      std::vector<float>& db = s.db_base[i];
      std::fill(db.begin(), db.end(), 0.0f);
      lora_backward(dx, p.da.data(), db.data(), s.du.data(), dy, p.out, x, acts(l).u[int(t)].data(),
                    p.a.data(), s.b_base[i].data(), ls, n, p.in, p.out, r);
      for (int64_t o = 0; o < p.out; ++o)
        for (int j = 0; j < r; ++j) p.db[size_t(hf[o]) * r + j] += db[size_t(o) * r + j];
    }
  };
  // out = rms(inp; weight) when the weight is present, else a copy.
  auto maybe_norm = [&](float* out, const float* inp, const forward::Vector& weight,
                        int64_t rows, int dim) {
    if (weight.empty())
      std::copy_n(inp, rows * dim, out);
    else
      forward::rmsnorm_forward(out, inp, weight.data(), off, rows, dim, eps);
  };
  // dinp (+)= VJP of maybe_norm.
  auto maybe_norm_back = [&](float* dinp, const float* dout, const float* inp,
                             const forward::Vector& weight, int64_t rows, int dim, bool accumulate) {
    if (!accumulate) std::fill(dinp, dinp + rows * dim, 0.0f);
    if (weight.empty())
      add(dinp, dout, rows * dim);
    else
      rmsnorm_backward(dinp, dout, inp, weight.data(), off, rows, dim, eps);
  };
  auto attn_scale = [&](const LayerConfig& L) {
    return cfg.attn_scale != 0 ? cfg.attn_scale : 1.0f / std::sqrt(float(L.head_dim));
  };

  // The adapters on layer l's experts (empty vectors when it has none).
  auto expert_adapters = [&](int l) {
    ExpertAdapters ad;
    ad.scale = ls;
    ad.rank = r;
    const size_t E = w.layers[l].experts.size();
    for (auto [t, v] : {std::pair{Target::kExpertGate, &ad.gate},
                        std::pair{Target::kExpertUp, &ad.up},
                        std::pair{Target::kExpertDown, &ad.down}}) {
      v->assign(E, nullptr);
      const int first = index_[l][int(t)];
      if (first >= 0)
        for (size_t e = 0; e < E; ++e) (*v)[e] = &pairs_[size_t(first) + e];
    }
    return ad;
  };

  auto layer_forward = [&](int l, const float* x, float* out) {
    const LayerConfig& L = cfg.layers[l];
    const forward::LayerWeights& W = w.layers[l];
    const int NH = L.n_head, NKV = L.n_head_kv, HD = L.head_dim;
    const int64_t lqd = int64_t(NH) * HD, lkvd = int64_t(NKV) * HD;
    const int src = kv_src(l);
    LayerActivations& a = acts(l);
    // attention
    forward::rmsnorm_forward(a.h1.data(), x, W.attn_norm.data(), off, n, H, eps);
    project(l, Target::kQ, a.q_raw.data(), a.h1.data());
    maybe_norm(a.q.data(), a.q_raw.data(), W.q_norm, n * NH, HD);
    forward::rope_forward(a.q.data(), pos, n, NH, lqd, s.rope[l]);
    if (src == l) {
      project(l, Target::kK, a.k_raw.data(), a.h1.data());
      if (W.wv)
        project(l, Target::kV, a.v_raw.data(), a.h1.data());
      else  // k_eq_v: V is the raw K projection, before k_norm and RoPE
        std::copy_n(a.k_raw.data(), n * lkvd, a.v_raw.data());
      float* kc = kc_of(l);
      float* vc = vc_of(l);
      maybe_norm(kc, a.k_raw.data(), W.k_norm, n * NKV, HD);
      forward::rope_forward(kc, pos, n, NKV, lkvd, s.rope[l]);
      if (cfg.v_norm)
        forward::rmsnorm_forward(vc, a.v_raw.data(), nullptr, 0, n * NKV, HD, eps);
      else
        std::copy_n(a.v_raw.data(), n * lkvd, vc);
    }
    forward::attention_forward_masked(a.att.data(), a.lse.data(), a.q.data(),
                                      kc_of(l), vc_of(l), first_key, n, 0, NH, NKV, HD, L.window,
                                      attn_scale(L));
    project(l, Target::kO, a.a_raw.data(), a.att.data());
    maybe_norm(s.tmp.data(), a.a_raw.data(), W.post_attn_norm, n, H);
    for (int64_t i = 0; i < nH; ++i) a.x2[i] = x[i] + s.tmp[i];
    // feed-forward
    forward::rmsnorm_forward(a.h2.data(), a.x2.data(), W.ffn_norm.data(), off, n, H, eps);
    std::fill(a.md.begin(), a.md.begin() + nH, 0.0f);
    if (L.ffn != FfnKind::kMoe && W.ffn_gate) {
      project(l, Target::kGate, a.gate.data(), a.h2.data());
      project(l, Target::kUp, a.up.data(), a.h2.data());
      forward::glu_forward(a.act.data(), a.gate.data(), a.up.data(), n * L.d_ff, cfg.act);
      project(l, Target::kDown, a.md.data(), a.act.data());
    }
    const ExpertAdapters experts = expert_adapters(l);
    if (L.ffn == FfnKind::kMoe) {
      forward::moe_forward(a.m.data(), a.h2.data(), a.h2.data(), W, L, n, H, cfg.act,
                           cfg.moe_norm_topk, s.scratch, experts.hook());
    } else if (L.ffn == FfnKind::kDenseAndMoe) {
      maybe_norm(a.m.data(), a.md.data(), W.post_ffn_norm_1, n, H);
      forward::router_input(a.z.data(), a.x2.data(), W, n, H, eps);
      maybe_norm(a.ex_in.data(), a.x2.data(), W.pre_ffn_norm_2, n, H);
      forward::moe_forward(a.m2.data(), a.z.data(), a.ex_in.data(), W, L, n, H, cfg.act,
                           cfg.moe_norm_topk, s.scratch, experts.hook());
      maybe_norm(s.tmp.data(), a.m2.data(), W.post_ffn_norm_2, n, H);
      add(a.m.data(), s.tmp.data(), nH);
    } else {
      std::copy_n(a.md.data(), nH, a.m.data());
    }
    maybe_norm(s.tmp.data(), a.m.data(), W.post_ffn_norm, n, H);
    for (int64_t i = 0; i < nH; ++i) out[i] = a.x2[i] + s.tmp[i];  // x3
    // per-layer embedding
    if (P > 0) {
      for (int64_t t = 0; t < n; ++t)
        std::copy_n(&s.ple[t * ple_w + int64_t(l) * P], P, &a.ple_l[t * P]);
      forward::matmul_forward(a.pg.data(), out, W.ple_gate, n, P, s.scratch);
      forward::glu_forward(a.pa.data(), a.pg.data(), a.ple_l.data(), n * P, cfg.act);
      forward::matmul_forward(a.pp.data(), a.pa.data(), W.ple_proj, n, H, s.scratch);
      forward::rmsnorm_forward(s.tmp.data(), a.pp.data(), W.ple_post_norm.data(), off, n, H, eps);
      add(out, s.tmp.data(), nH);
    }
    if (W.layer_scalar != 1)
      for (int64_t i = 0; i < nH; ++i) out[i] *= W.layer_scalar;
  };

  // s.dx: dL/d(layer output) on entry, dL/d(layer input) on return.
  auto layer_backward = [&](int l, const float* x) {
    const LayerConfig& L = cfg.layers[l];
    const forward::LayerWeights& W = w.layers[l];
    const int NH = L.n_head, NKV = L.n_head_kv, HD = L.head_dim;
    const int64_t lqd = int64_t(NH) * HD, lkvd = int64_t(NKV) * HD;
    const int src = kv_src(l);
    LayerActivations& a = acts(l);
    if (W.layer_scalar != 1)
      for (int64_t i = 0; i < nH; ++i) s.dx[i] *= W.layer_scalar;
    // per-layer embedding: s.dx becomes dL/dx3
    if (P > 0) {
      std::fill(s.dt.begin(), s.dt.end(), 0.0f);
      rmsnorm_backward(s.dt.data(), s.dx.data(), a.pp.data(), W.ple_post_norm.data(), off, n, H,
                       eps);
      matmul_backward(s.dp.data(), s.dt.data(), H, W.ple_proj, n, false, s.scratch);
      // The gradient of the per-layer input (into dple) is dropped: it is a constant.
      glu_backward(s.dpg.data(), s.dple.data(), s.dp.data(), a.pg.data(), a.ple_l.data(), n * P,
                   cfg.act);
      matmul_backward(s.dx.data(), s.dpg.data(), P, W.ple_gate, n, true, s.scratch);
    }
    // feed-forward: dx2 = dx3 + the branch's gradient
    std::copy_n(s.dx.data(), nH, s.dx2.data());
    maybe_norm_back(s.dm.data(), s.dx.data(), a.m.data(), W.post_ffn_norm, n, H, false);
    std::fill(s.dh.begin(), s.dh.end(), 0.0f);  // dL/dh2
    const float* dmd = s.dm.data();
    const ExpertAdapters experts = expert_adapters(l);
    if (L.ffn == FfnKind::kMoe) {
      moe_backward(s.dh.data(), s.dh.data(), s.dm.data(), a.h2.data(), a.h2.data(), W, L, n, H,
                   cfg.act, cfg.moe_norm_topk, s.scratch, &experts);
    } else if (L.ffn == FfnKind::kDenseAndMoe) {
      // experts: dL/dm2 into tmp, dL/dz into dz, dL/dex_in into dex
      maybe_norm_back(s.tmp.data(), s.dm.data(), a.m2.data(), W.post_ffn_norm_2, n, H, false);
      std::fill(s.dz.begin(), s.dz.end(), 0.0f);
      std::fill(s.dex.begin(), s.dex.end(), 0.0f);
      moe_backward(s.dz.data(), s.dex.data(), s.tmp.data(), a.z.data(), a.ex_in.data(), W, L, n,
                   H, cfg.act, cfg.moe_norm_topk, s.scratch, &experts);
      maybe_norm_back(s.dx2.data(), s.dex.data(), a.x2.data(), W.pre_ffn_norm_2, n, H, true);
      // z = rms(x2) · scale / sqrt(H) (forward::router_input)
      const float root = 1.0f / std::sqrt(float(H));
      for (int64_t t = 0; t < n; ++t)
        for (int i = 0; i < H; ++i)
          s.dz[t * H + i] *= (W.router_scale.empty() ? 1.0f : W.router_scale[i]) * root;
      rmsnorm_backward(s.dx2.data(), s.dz.data(), a.x2.data(), nullptr, 0, n, H, eps);
      maybe_norm_back(s.dt.data(), s.dm.data(), a.md.data(), W.post_ffn_norm_1, n, H, false);
      dmd = s.dt.data();
    }
    if (L.ffn != FfnKind::kMoe && W.ffn_gate) {
      project_back(l, Target::kDown, s.dact.data(), dmd, a.act.data(), false);
      glu_backward(s.dgate.data(), s.dup.data(), s.dact.data(), a.gate.data(), a.up.data(),
                   n * L.d_ff, cfg.act);
      project_back(l, Target::kGate, s.dh.data(), s.dgate.data(), a.h2.data(), true);
      project_back(l, Target::kUp, s.dh.data(), s.dup.data(), a.h2.data(), true);
    }
    rmsnorm_backward(s.dx2.data(), s.dh.data(), a.x2.data(), W.ffn_norm.data(), off, n, H, eps);
    // attention: dx = dx2 + the branch's gradient
    std::copy_n(s.dx2.data(), nH, s.dx.data());
    maybe_norm_back(s.dt.data(), s.dx2.data(), a.a_raw.data(), W.post_attn_norm, n, H, false);
    project_back(l, Target::kO, s.datt.data(), s.dt.data(), a.att.data(), false);
    attention_backward(s.dq.data(), s.dk.data(), s.dv.data(), s.datt.data(), a.q.data(),
                       kc_of(l), vc_of(l), a.att.data(),
                       a.lse.data(), first_key,
                       n, NH, NKV, HD, L.window, attn_scale(L));
    float* dkc = s.dkc[size_t(slot[l])].data();
    float* dvc = s.dvc[size_t(slot[l])].data();
    if (!donor[size_t(src)]) {  // no other layer adds into this layer's K/V gradient
      std::fill(dkc, dkc + n * lkvd, 0.0f);
      std::fill(dvc, dvc + n * lkvd, 0.0f);
    }
    add(dkc, s.dk.data(), n * lkvd);
    add(dvc, s.dv.data(), n * lkvd);
    rope_backward(s.dq.data(), pos, n, NH, lqd, s.rope[l]);
    // dq_raw into datt (free now)
    maybe_norm_back(s.datt.data(), s.dq.data(), a.q_raw.data(), W.q_norm, n * NH, HD, false);
    project_back(l, Target::kQ, s.dh.data(), s.datt.data(), a.h1.data(), false);
    if (src == l) {  // every reader of this layer's K/V has added its gradient by now
      rope_backward(dkc, pos, n, NKV, lkvd, s.rope[l]);
      maybe_norm_back(s.dk.data(), dkc, a.k_raw.data(), W.k_norm, n * NKV, HD, false);
      if (cfg.v_norm) {
        std::fill(s.dv.begin(), s.dv.end(), 0.0f);
        rmsnorm_backward(s.dv.data(), dvc, a.v_raw.data(), nullptr, 0, n * NKV, HD, eps);
      } else {
        std::copy_n(dvc, n * lkvd, s.dv.data());
      }
      if (W.wv) {
        project_back(l, Target::kV, s.dh.data(), s.dv.data(), a.h1.data(), true);
      } else {  // k_eq_v: V's gradient joins K's before the K projection
        add(s.dk.data(), s.dv.data(), n * lkvd);
      }
      project_back(l, Target::kK, s.dh.data(), s.dk.data(), a.h1.data(), true);
    }
    rmsnorm_backward(s.dx.data(), s.dh.data(), x, W.attn_norm.data(), off, n, H, eps);
  };

  // Embeddings (and the per-layer inputs, constants of training), then the layers keeping
  // each one's input.
  forward::embed_tokens(s.layer_in[0].data(), batch.tokens.data(), n, base_);
  if (P > 0) {
    s.ple.resize(size_t(n * ple_w));
    s.ple_tok.resize(size_t(n * ple_w));
    forward::per_layer_inputs(s.ple.data(), s.ple_tok.data(), batch.tokens.data(),
                              s.layer_in[0].data(), n, base_, s.scratch);
  }
  for (int l = 0; l < cfg.n_layer; ++l)
    layer_forward(l, s.layer_in[l].data(), s.layer_in[l + 1].data());
  // Output: final norm, then the fused cross-entropy (its gradient is dL/dh, scaled).
  const float* x_last = s.layer_in[cfg.n_layer].data();
  forward::rmsnorm_forward(s.tmp.data(), x_last, w.output_norm.data(), off, n, H, eps);
  const double loss = cross_entropy(s.dh.data(), s.tmp.data(), w.output, batch.targets.data(), n,
                                    cfg.final_softcap, grad_scale, s.scratch);
  if (!backward) return loss;
  std::fill(s.dx.begin(), s.dx.end(), 0.0f);
  rmsnorm_backward(s.dx.data(), s.dh.data(), x_last, w.output_norm.data(), off, n, H, eps);
  for (auto* v : {&s.dkc, &s.dvc})
    for (auto& b : *v) std::fill(b.begin(), b.end(), 0.0f);
  for (int l = cfg.n_layer - 1; l >= 0; --l) {
    // Recompute the layer (fills h1 ... pp, u and its own kc/vc; rewrites layer_in[l + 1]
    // with the same values) unless its activations were kept.
    if (!keep) layer_forward(l, s.layer_in[l].data(), s.layer_in[l + 1].data());
    layer_backward(l, s.layer_in[l].data());
  }
  return loss;
}

}  // namespace temper::train
