// LoRA adapters on a frozen base: target names, packing examples into a batch, which layers
// have which target, and PEFT's initialisation.
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "forward/weights.h"
#include "train/decoder_train.h"
#include "train/train.h"

namespace temper::train {

namespace {

struct TargetInfo {
  Target target;
  std::string_view name, hf_module;
};
constexpr TargetInfo kTargets[kNumTargets] = {
    {Target::kQ, "q", "self_attn.q_proj"},   {Target::kK, "k", "self_attn.k_proj"},
    {Target::kV, "v", "self_attn.v_proj"},   {Target::kO, "o", "self_attn.o_proj"},
    {Target::kGate, "gate", "mlp.gate_proj"}, {Target::kUp, "up", "mlp.up_proj"},
    {Target::kDown, "down", "mlp.down_proj"},
    {Target::kExpertGate, "expert_gate", "mlp.experts.*.gate_proj"},
    {Target::kExpertUp, "expert_up", "mlp.experts.*.up_proj"},
    {Target::kExpertDown, "expert_down", "mlp.experts.*.down_proj"},
};

// The experts of a layer as separate weights (gate, up, down per expert), which PEFT adapts
// one nn.Linear at a time; fused gate_up tensors (Gemma 4) are not adapter targets.
bool has_split_experts(const LayerConfig& L, const forward::LayerWeights& W) {
  return L.ffn != FfnKind::kDense && !W.experts.empty() && W.experts[0].gate &&
         !W.experts[0].gate_up;
}

// splitmix64 (Steele, Lea, Flood 2014): a fixed, portable stream, so an adapter's
// initialisation depends on the seed only, never on the C++ library's distributions.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The base's features the training pass does not handle, by name ("" when none). Every
// feature the runtime's decoder runs is trained; this guards layouts it would not meet.
std::string unsupported_feature(const ModelConfig& cfg, const forward::Weights& w) {
  for (int l = 0; l < cfg.n_layer; ++l) {
    const forward::LayerWeights& W = w.layers[l];
    if (W.attn_norm.empty() || W.ffn_norm.empty())
      return "a layer without pre-attention and pre-FFN norms";
  }
  return "";
}

// Whether layer l has the module target t trains: K/V only on layers that compute their own
// (not on layers reading another layer's K/V), V not where V is the K projection (k_eq_v),
// the MLP's three only on layers with a dense MLP (experts are not adapter targets).
bool layer_has(const ModelConfig& cfg, const forward::LayerWeights& W, int l, Target t) {
  const LayerConfig& L = cfg.layers[l];
  const bool owns_kv = L.kv_source_layer < 0 || L.kv_source_layer == l;
  const bool dense = L.ffn != FfnKind::kMoe && W.ffn_gate;
  switch (t) {
    case Target::kQ: case Target::kO: return true;
    case Target::kK: return owns_kv;
    case Target::kV: return owns_kv && bool(W.wv);
    case Target::kGate: case Target::kUp: case Target::kDown: return dense;
    case Target::kExpertGate: case Target::kExpertUp: case Target::kExpertDown:
      return has_split_experts(L, W);
  }
  return false;
}

// The HF row of each q (or k) output row of layer l when the base stores them permuted for
// interleaved RoPE, else empty. llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute)
// reshapes each head's rows as (2, HD/2) and swaps the axes: its row 2j + s of a head is HF's
// row s·HD/2 + j, which pairs (2j, 2j+1) for interleaved RoPE as HF's (j, j + HD/2).
std::vector<int32_t> hf_rows(const ModelConfig& cfg, int l, Target t) {
  if (cfg.rope_style != RopeStyle::kInterleaved) return {};
  const LayerConfig& L = cfg.layers[l];
  TEMPER_CHECK(L.n_rot == L.head_dim, "layer ", l, ": interleaved RoPE on ", L.n_rot, " of ",
               L.head_dim, " dims; cannot map q/k rows to the Hugging Face order");
  const int heads = t == Target::kQ ? L.n_head : L.n_head_kv, hd = L.head_dim;
  std::vector<int32_t> rows(size_t(heads) * hd);
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < hd / 2; ++j)
      for (int s = 0; s < 2; ++s) rows[size_t(h) * hd + 2 * j + s] = h * hd + s * hd / 2 + j;
  return rows;
}

}  // namespace

std::string_view target_name(Target t) { return kTargets[int(t)].name; }
std::string_view target_hf_module(Target t) { return kTargets[int(t)].hf_module; }
std::optional<Target> target_from_name(std::string_view name) {
  for (const TargetInfo& t : kTargets)
    if (t.name == name) return t.target;
  return std::nullopt;
}
std::vector<Target> all_targets() {
  std::vector<Target> v;
  for (const TargetInfo& t : kTargets)
    if (!is_expert_target(t.target)) v.push_back(t.target);
  return v;
}
bool is_expert_target(Target t) {
  return t == Target::kExpertGate || t == Target::kExpertUp || t == Target::kExpertDown;
}

std::string LoraPair::hf_module() const {
  std::string m(target_hf_module(target));
  const size_t star = m.find('*');
  if (star != std::string::npos) m.replace(star, 1, std::to_string(expert));
  return m;
}

float LoraConfig::scale() const {
  return rslora ? float(double(alpha) / std::sqrt(double(rank))) : float(double(alpha) / rank);
}

int64_t Batch::n_trained() const {
  int64_t n = 0;
  for (int32_t t : targets) n += t >= 0;
  return n;
}

Batch pack(const std::vector<Example>& examples) {
  Batch b;
  for (const Example& e : examples) {
    TEMPER_CHECK(e.trained.size() == e.tokens.size(), "example has ", e.tokens.size(),
                 " tokens but ", e.trained.size(), " mask entries");
    const int32_t start = int32_t(b.tokens.size());
    const size_t m = e.tokens.size();
    for (size_t i = 0; i < m; ++i) {
      b.tokens.push_back(e.tokens[i]);
      b.targets.push_back(i + 1 < m && e.trained[i + 1] ? e.tokens[i + 1] : -1);
      b.positions.push_back(int32_t(i));
      b.first_key.push_back(start);
    }
  }
  return b;
}

LoraModel::~LoraModel() = default;

LoraModel::LoraModel(const forward::Model& base, const LoraConfig& cfg)
    : base_(base), cfg_(cfg), work_(std::make_unique<Work>()) {
  const ModelConfig& mc = base.config();
  const forward::Weights& w = base.weights();
  const std::string feature = unsupported_feature(mc, w);
  TEMPER_CHECK(feature.empty(), "temper train does not train models with ", feature);
  TEMPER_CHECK(!cfg.targets.empty(), "no LoRA targets given");
  TEMPER_CHECK(cfg.rank > 0, "LoRA rank must be positive, got ", cfg.rank);
  std::vector<bool> chosen(kNumTargets, false);
  for (Target t : cfg.targets) chosen[int(t)] = true;
  uint64_t rng = cfg.seed;
  index_.assign(mc.n_layer, std::vector<int>(kNumTargets, -1));
  auto add_pair = [&](int l, Target t, int expert, const forward::Matrix& m) {
    LoraPair p;
    p.layer = l;
    p.target = t;
    p.expert = expert;
    p.in = m.cols;
    p.out = m.rows;
    TEMPER_CHECK(cfg.rank <= std::min(p.in, p.out), "LoRA rank ", cfg.rank,
                 " is larger than layer ", l, " ", p.hf_module(), " (", p.out, " x ", p.in, ")");
    // PEFT: A = kaiming_uniform_(a = sqrt(5)) on (r, in): gain sqrt(2 / (1 + 5)), bound
    // gain · sqrt(3 / fan_in) = 1 / sqrt(in). B = 0, so the adapter starts as a no-op.
    const double bound = 1.0 / std::sqrt(double(p.in));
    p.a.resize(size_t(cfg.rank * p.in));
    for (float& v : p.a) {
      const double u = double(splitmix64(rng) >> 11) * 0x1.0p-53;  // [0, 1)
      v = float((2 * u - 1) * bound);
    }
    p.b.assign(size_t(p.out * cfg.rank), 0.0f);
    p.da.assign(p.a.size(), 0.0f);
    p.db.assign(p.b.size(), 0.0f);
    pairs_.push_back(std::move(p));
    hf_row_.push_back(t == Target::kQ || t == Target::kK ? hf_rows(mc, l, t)
                                                         : std::vector<int32_t>{});
  };
  for (int l = 0; l < mc.n_layer; ++l) {
    const forward::LayerWeights& W = w.layers[l];
    for (int t = 0; t < kNumTargets; ++t) {
      if (!chosen[t] || !layer_has(mc, W, l, Target(t))) continue;
      index_[l][t] = int(pairs_.size());
      if (!is_expert_target(Target(t))) {
        const forward::Matrix* mats[] = {&W.wq,       &W.wk,     &W.wv,      &W.wo,
                                         &W.ffn_gate, &W.ffn_up, &W.ffn_down};
        add_pair(l, Target(t), -1, *mats[t]);
        continue;
      }
      for (int e = 0; e < int(W.experts.size()); ++e) {
        const forward::ExpertWeights& ew = W.experts[e];
        const forward::Matrix& m = Target(t) == Target::kExpertGate ? ew.gate
                                   : Target(t) == Target::kExpertUp ? ew.up
                                                                    : ew.down;
        add_pair(l, Target(t), e, m);
      }
    }
    // LongRoPE's short factors: HF's for an example of at most original_max_position_embeddings
    // tokens (LoraModel::run refuses longer ones).
    work_->rope.push_back(forward::make_rope_params(mc.rope_style, mc.layers[l], 0));
  }
  for (Target t : cfg.targets) {
    bool any = false;
    for (int l = 0; l < mc.n_layer; ++l) any = any || index_[l][int(t)] >= 0;
    TEMPER_CHECK(any, "LoRA target '", target_name(t), "' matches no projection of this model",
                 t == Target::kGate || t == Target::kUp || t == Target::kDown
                     ? " (its MLPs are experts: leave gate, up, down out, or adapt the experts with"
                       " expert_gate, expert_up, expert_down)"
                 : is_expert_target(t)
                     ? " (it has no experts stored one weight per expert; fused expert tensors"
                       " are not adapter targets)"
                     : "");
  }
}

LoraPair* LoraModel::find(int layer, Target t) {
  if (layer < 0 || layer >= int(index_.size())) return nullptr;
  const int i = index_[layer][int(t)];
  return i < 0 ? nullptr : &pairs_[i];
}

void LoraModel::zero_grads() {
  for (LoraPair& p : pairs_) {
    std::fill(p.da.begin(), p.da.end(), 0.0f);
    std::fill(p.db.begin(), p.db.end(), 0.0f);
  }
}

double LoraModel::forward_backward(const Batch& batch, float grad_scale) {
  return run(batch, grad_scale, true);
}
double LoraModel::loss(const Batch& batch) { return run(batch, 0.0f, false); }

}  // namespace temper::train
