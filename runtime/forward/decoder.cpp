// The generic decoder: Model::load binds the weights and checks the per-layer features are
// consistent; Session::eval runs embedding -> layers -> output for a batch of tokens. Which
// blocks run is decided by the config's features and by which tensors the arch table
// provides (sandwich norms, q/k norms, KV sharing, experts, per-layer embeddings), never by
// the architecture's name.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "forward/forward.h"
#include "forward/kernels.h"
#include "forward/layers.h"
#include "forward/lora_apply.h"
#include "forward/matmul.h"
#include "forward/weights.h"

namespace temper::forward {

namespace {

// A scale the checkpoint's framework applies in the embedding's own dtype.
float round_to_dtype(float v, DType t) {
  if (t == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  if (t == DType::kF16) return f16_to_f32(f32_to_f16(v));
  return v;
}

int kv_source(const ModelConfig& cfg, int l) {
  const int s = cfg.layers[l].kv_source_layer;
  return s < 0 ? l : s;
}

void check_layers(const ModelConfig& cfg, const Weights& w) {
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[l];
    const LayerWeights& W = w.layers[l];
    TEMPER_CHECK(L.n_head > 0 && L.n_head_kv > 0 && L.n_head % L.n_head_kv == 0, "layer ", l,
                 ": n_head ", L.n_head, " is not a multiple of n_head_kv ", L.n_head_kv);
    TEMPER_CHECK(L.n_rot % 2 == 0 && L.n_rot <= L.head_dim, "layer ", l, ": n_rot ", L.n_rot,
                 " must be even and <= head_dim ", L.head_dim);
    TEMPER_CHECK(L.rope_freq_factors.empty() || int(L.rope_freq_factors.size()) >= L.n_rot / 2,
                 "layer ", l, ": ", L.rope_freq_factors.size(), " rope_freq_factors, need ",
                 L.n_rot / 2);
    const int src = kv_source(cfg, l);
    if (src != l) {
      TEMPER_CHECK(src < l && kv_source(cfg, src) == src, "layer ", l, " takes K/V from layer ",
                   src, ", which is not an earlier layer owning K/V");
      const LayerConfig& S = cfg.layers[src];
      TEMPER_CHECK(S.n_head_kv == L.n_head_kv && S.head_dim == L.head_dim, "layer ", l,
                   " shares K/V with layer ", src, " but their KV geometry differs");
    } else {
      TEMPER_CHECK(W.wk && (W.wv || L.k_eq_v), "layer ", l, ": K/V projections are missing");
    }
    if (L.ffn != FfnKind::kDense) {
      TEMPER_CHECK(W.router && L.n_expert_used > 0 && L.n_expert_used <= L.n_expert, "layer ", l,
                   ": experts need a router and 0 < n_expert_used <= n_expert");
      for (const ExpertWeights& e : W.experts)
        TEMPER_CHECK((e.gate_up || (e.gate && e.up)) && e.down, "layer ", l,
                     ": an expert's weights are missing");
    }
    if (L.ffn != FfnKind::kMoe && L.d_ff > 0)
      TEMPER_CHECK(W.ffn_gate && W.ffn_up && W.ffn_down, "layer ", l, ": MLP weights missing");
  }
}

}  // namespace

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const TensorSource& src, const ModelDescription& desc,
                                   const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = desc.config;
  validate_config(m->cfg_);
  m->w_ = std::make_unique<Weights>(
      bind_weights(src, desc, opts.gguf_names ? NameScheme::kGguf : NameScheme::kHf));
  const ModelConfig& cfg = m->cfg_;
  const Weights& w = *m->w_;
  TEMPER_CHECK(w.token_embd && w.output && !w.output_norm.empty(),
               "model lacks token embeddings, output norm or output matrix");
  check_layers(cfg, w);
  if (cfg.embed_scale != 0) {
    m->embed_scale_ = opts.embed_scale_in_weight_dtype
                          ? round_to_dtype(cfg.embed_scale, w.token_embd.dtype)
                          : cfg.embed_scale;
  }
  if (cfg.ple_dim > 0) {
    TEMPER_CHECK(w.ple_token_embd && w.ple_model_proj && !w.ple_proj_norm.empty(),
                 "per-layer embedding tensors are missing");
    const float s = std::sqrt(float(cfg.ple_dim));
    m->ple_embed_scale_ =
        opts.embed_scale_in_weight_dtype ? round_to_dtype(s, w.ple_token_embd.dtype) : s;
  }
  return m;
}

// Embeddings (shared with the training pass, train/decoder_train.cpp).

void embed_tokens(float* x, const int32_t* tokens, int64_t T, const Model& model) {
  const ModelConfig& cfg = model.config();
  const int H = cfg.d_model;
  for (int64_t t = 0; t < T; ++t) {
    float* xt = x + t * H;
    matrix_row(xt, model.weights().token_embd, tokens[t]);
    if (cfg.embed_scale != 0)
      for (int i = 0; i < H; ++i) xt[i] *= model.embed_scale();
  }
}

// ple[t, l, :] = (RMS(x·Wprojᵀ / sqrt(H); w) + E_ple[id]·sqrt(P)) / sqrt(2).
void per_layer_inputs(float* ple, float* tok_scratch, const int32_t* tokens, const float* x,
                      int64_t T, const Model& model, std::vector<float>& scratch) {
  const ModelConfig& cfg = model.config();
  const Weights& w = model.weights();
  const int H = cfg.d_model, P = cfg.ple_dim;
  const int64_t ple_w = int64_t(cfg.n_layer) * P;
  matmul_forward(ple, x, w.ple_model_proj, T, ple_w, scratch);
  const float proj_scale = 1.0f / std::sqrt(float(H));
  for (int64_t i = 0; i < T * ple_w; ++i) ple[i] *= proj_scale;
  rmsnorm_forward(ple, ple, w.ple_proj_norm.data(), cfg.norm_weight_offset, T * cfg.n_layer, P,
                  cfg.norm_eps);
  const float mix = float(1 / std::sqrt(2.0));
  for (int64_t t = 0; t < T; ++t) {
    TEMPER_CHECK(tokens[t] < w.ple_token_embd.rows, "token id ", tokens[t],
                 " is outside the per-layer embedding table");
    float* tok = tok_scratch + t * ple_w;
    matrix_row(tok, w.ple_token_embd, tokens[t]);
    float* p = ple + t * ple_w;
    for (int64_t i = 0; i < ple_w; ++i) p[i] = (p[i] + tok[i] * model.ple_embed_scale()) * mix;
  }
}

void router_input(float* out, const float* x, const LayerWeights& w, int64_t T, int H,
                  float eps) {
  rmsnorm_forward(out, x, nullptr, 0, T, H, eps);
  const float root = 1.0f / std::sqrt(float(H));
  for (int64_t t = 0; t < T; ++t)
    for (int i = 0; i < H; ++i) {
      float& r = out[t * H + i];
      r = r * (w.router_scale.empty() ? 1.0f : w.router_scale[i]) * root;
    }
}

// Activation buffers and the KV cache of one session.
struct Session::State {
  std::vector<std::vector<float>> k_cache, v_cache;  // per layer owning K/V: (n_ctx, NKV*HD)
  std::vector<RopeParams> rope;                      // per layer
  std::vector<float> x, h, h2, q, k, v, attn, a, gate, up, m, m2, ple, ple_tok, tmp, logits;
  std::vector<float> scratch;  // matmul dequantisation tile
  std::vector<int32_t> pos;

  // All activation sizes for a batch of T tokens, from the config in one place.
  void size_for(int64_t T, const ModelConfig& cfg) {
    const int64_t H = cfg.d_model;
    int64_t qd = 0, kvd = 0, ff = 0;
    for (const LayerConfig& L : cfg.layers) {
      qd = std::max<int64_t>(qd, int64_t(L.n_head) * L.head_dim);
      kvd = std::max<int64_t>(kvd, int64_t(L.n_head_kv) * L.head_dim);
      ff = std::max<int64_t>(ff, L.d_ff);
    }
    for (auto* b : {&x, &h, &h2, &a, &m, &m2, &tmp}) b->resize(size_t(T * H));
    for (auto* b : {&q, &attn}) b->resize(size_t(T * qd));
    for (auto* b : {&k, &v}) b->resize(size_t(T * kvd));
    for (auto* b : {&gate, &up}) b->resize(size_t(T * std::max<int64_t>(ff, cfg.ple_dim)));
    const int64_t ple_w = int64_t(cfg.n_layer) * cfg.ple_dim;
    ple.resize(size_t(T * ple_w));
    ple_tok.resize(size_t(T * ple_w));
    pos.resize(size_t(T));
  }
};

Session::Session(const Model& model, int n_ctx)
    : model_(model), n_ctx_(n_ctx), st_(std::make_unique<State>()) {
  const ModelConfig& cfg = model.config();
  TEMPER_CHECK(n_ctx > 0, "session context must be positive, got ", n_ctx);
  st_->k_cache.resize(cfg.n_layer);
  st_->v_cache.resize(cfg.n_layer);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[l];
    st_->rope.push_back(make_rope_params(cfg.rope_style, L, n_ctx));
    if (kv_source(cfg, l) != l) continue;
    const size_t n = size_t(n_ctx) * L.n_head_kv * L.head_dim;
    st_->k_cache[l].resize(n);
    st_->v_cache[l].resize(n);
  }
}

Session::~Session() = default;

std::vector<float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& cfg = model_.config();
  const Weights& w = model_.weights();
  State& s = *st_;
  const int64_t T = int64_t(tokens.size());
  if (T == 0) return {};
  TEMPER_CHECK(n_past_ + T <= n_ctx_, "context overflow: ", n_past_, " cached + ", T,
               " new tokens > n_ctx ", n_ctx_);
  for (int32_t id : tokens)
    TEMPER_CHECK(id >= 0 && id < w.token_embd.rows, "token id ", id, " is outside the vocab (",
                 w.token_embd.rows, ")");
  s.size_for(T, cfg);
  const int H = cfg.d_model;
  const float off = cfg.norm_weight_offset, eps = cfg.norm_eps;
  for (int64_t t = 0; t < T; ++t) s.pos[t] = int32_t(n_past_ + t);

  embed_tokens(s.x.data(), tokens.data(), T, model_);
  const int P = cfg.ple_dim;
  const int64_t ple_w = int64_t(cfg.n_layer) * P;
  if (P > 0)
    per_layer_inputs(s.ple.data(), s.ple_tok.data(), tokens.data(), s.x.data(), T, model_,
                     s.scratch);

  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[l];
    const LayerWeights& W = w.layers[l];
    const int NH = L.n_head, NKV = L.n_head_kv, HD = L.head_dim;
    const int64_t qd = int64_t(NH) * HD, kvd = int64_t(NKV) * HD;
    const RopeParams& rope = s.rope[l];
    // LoRA hook: y += adapters' low-rank update of the projection x -> y (forward/lora_apply.h).
    auto lora = [&](float* y, const float* x, LoraSlot slot) {
      if (model_.lora()) model_.lora()->add(y, x, l, slot, T);
    };
    // The same inside the experts, for adapters on per-expert projections.
    ExpertHook expert_lora;
    if (model_.lora() && model_.lora()->has_expert_adapters(l))
      expert_lora = [&, set = model_.lora()](int e, ExpertProj p, float* y, const float* x, int64_t n) {
        set->add_expert(y, x, l, e, p == ExpertProj::kGate ? LoraSlot::kGate : p == ExpertProj::kUp ? LoraSlot::kUp : LoraSlot::kDown, n);
      };

    // --- attention
    rmsnorm_forward(s.h.data(), s.x.data(), W.attn_norm.data(), off, T, H, eps);
    matmul_forward(s.q.data(), s.h.data(), W.wq, T, qd, s.scratch);
    lora(s.q.data(), s.h.data(), LoraSlot::kQ);
    if (!W.q_norm.empty())
      rmsnorm_forward(s.q.data(), s.q.data(), W.q_norm.data(), off, T * NH, HD, eps);
    rope_forward(s.q.data(), s.pos.data(), T, NH, qd, rope);
    const int src = kv_source(cfg, l);
    if (src == l) {
      matmul_forward(s.k.data(), s.h.data(), W.wk, T, kvd, s.scratch);
      lora(s.k.data(), s.h.data(), LoraSlot::kK);
      if (W.wv) {
        matmul_forward(s.v.data(), s.h.data(), W.wv, T, kvd, s.scratch);
        lora(s.v.data(), s.h.data(), LoraSlot::kV);
      } else  // k_eq_v: V is the raw K projection, before k_norm and RoPE
        std::copy_n(s.k.data(), T * kvd, s.v.data());
      if (!W.k_norm.empty())
        rmsnorm_forward(s.k.data(), s.k.data(), W.k_norm.data(), off, T * NKV, HD, eps);
      rope_forward(s.k.data(), s.pos.data(), T, NKV, kvd, rope);
      if (cfg.v_norm) rmsnorm_forward(s.v.data(), s.v.data(), nullptr, 0, T * NKV, HD, eps);
      std::copy_n(s.k.data(), T * kvd, &s.k_cache[l][n_past_ * kvd]);
      std::copy_n(s.v.data(), T * kvd, &s.v_cache[l][n_past_ * kvd]);
    }
    const float scale = cfg.attn_scale != 0 ? cfg.attn_scale : 1.0f / std::sqrt(float(HD));
    attention_forward(s.attn.data(), s.q.data(), s.k_cache[src].data(), s.v_cache[src].data(), T,
                      n_past_, NH, NKV, HD, L.window, scale);
    matmul_forward(s.a.data(), s.attn.data(), W.wo, T, H, s.scratch);
    lora(s.a.data(), s.attn.data(), LoraSlot::kO);
    if (!W.post_attn_norm.empty())
      rmsnorm_forward(s.a.data(), s.a.data(), W.post_attn_norm.data(), off, T, H, eps);
    for (int64_t i = 0; i < T * H; ++i) s.x[i] += s.a[i];

    // --- feed-forward: dense MLP, experts, or both side by side
    std::fill(s.m.begin(), s.m.begin() + T * H, 0.0f);
    if (!W.ffn_norm.empty())
      rmsnorm_forward(s.h.data(), s.x.data(), W.ffn_norm.data(), off, T, H, eps);
    if (L.ffn != FfnKind::kMoe && W.ffn_gate) {
      matmul_forward(s.gate.data(), s.h.data(), W.ffn_gate, T, L.d_ff, s.scratch);
      lora(s.gate.data(), s.h.data(), LoraSlot::kGate);
      matmul_forward(s.up.data(), s.h.data(), W.ffn_up, T, L.d_ff, s.scratch);
      lora(s.up.data(), s.h.data(), LoraSlot::kUp);
      glu_forward(s.gate.data(), s.gate.data(), s.up.data(), T * L.d_ff, cfg.act);
      matmul_forward(s.m.data(), s.gate.data(), W.ffn_down, T, H, s.scratch);
      lora(s.m.data(), s.gate.data(), LoraSlot::kDown);
    }
    if (L.ffn == FfnKind::kMoe) {
      // FfnKind::kMoe: a sparse block on the ffn-normed residual.
      moe_forward(s.m.data(), s.h.data(), s.h.data(), W, L, T, H, cfg.act, cfg.moe_norm_topk,
                  s.scratch, expert_lora);
    } else if (L.ffn == FfnKind::kDenseAndMoe) {
      // FfnKind::kDenseAndMoe: experts beside the dense MLP, each branch with its own norms;
      // the router reads the unweighted-normed residual times its scale vector / sqrt(H).
      if (!W.post_ffn_norm_1.empty())
        rmsnorm_forward(s.m.data(), s.m.data(), W.post_ffn_norm_1.data(), off, T, H, eps);
      router_input(s.tmp.data(), s.x.data(), W, T, H, eps);
      const float* ex_in = s.x.data();
      if (!W.pre_ffn_norm_2.empty()) {
        rmsnorm_forward(s.h2.data(), s.x.data(), W.pre_ffn_norm_2.data(), off, T, H, eps);
        ex_in = s.h2.data();
      }
      moe_forward(s.m2.data(), s.tmp.data(), ex_in, W, L, T, H, cfg.act, cfg.moe_norm_topk,
                  s.scratch, expert_lora);
      if (!W.post_ffn_norm_2.empty())
        rmsnorm_forward(s.m2.data(), s.m2.data(), W.post_ffn_norm_2.data(), off, T, H, eps);
      for (int64_t i = 0; i < T * H; ++i) s.m[i] += s.m2[i];
    }
    if (!W.post_ffn_norm.empty())
      rmsnorm_forward(s.m.data(), s.m.data(), W.post_ffn_norm.data(), off, T, H, eps);
    for (int64_t i = 0; i < T * H; ++i) s.x[i] += s.m[i];

    // --- per-layer embedding: x += RMS(Wproj · (act(Wgate · x) ⊙ ple_l); w)
    if (P > 0) {
      matmul_forward(s.gate.data(), s.x.data(), W.ple_gate, T, P, s.scratch);
      act_forward(s.gate.data(), T * P, cfg.act);
      for (int64_t t = 0; t < T; ++t)
        for (int i = 0; i < P; ++i) s.gate[t * P + i] *= s.ple[t * ple_w + int64_t(l) * P + i];
      matmul_forward(s.tmp.data(), s.gate.data(), W.ple_proj, T, H, s.scratch);
      rmsnorm_forward(s.tmp.data(), s.tmp.data(), W.ple_post_norm.data(), off, T, H, eps);
      for (int64_t i = 0; i < T * H; ++i) s.x[i] += s.tmp[i];
    }
    if (W.layer_scalar != 1)
      for (int64_t i = 0; i < T * H; ++i) s.x[i] *= W.layer_scalar;
  }

  // --- output
  const int64_t first = all_logits ? 0 : T - 1, n_out = T - first;
  const int64_t V = w.output.rows;
  rmsnorm_forward(s.h.data(), &s.x[first * H], w.output_norm.data(), off, n_out, H, eps);
  std::vector<float> logits(size_t(n_out * V));
  matmul_forward(logits.data(), s.h.data(), w.output, n_out, V, s.scratch);
  if (cfg.final_softcap != 0) softcap_forward(logits.data(), n_out * V, cfg.final_softcap);
  n_past_ += int(T);
  return logits;
}

}  // namespace temper::forward
