// Binding LoRA adapters to a base model (shape and architecture checks, GGUF q/k layout) and
// adding their low-rank update after a projection. The two small products run through the
// same matmul kernels as the base weights.
#include "forward/lora_apply.h"

#include <cstring>
#include <map>

#include "core/error.h"
#include "core/escape.h"
#include "core/log.h"
#include "core/sha256.h"
#include "forward/matmul.h"
#include "model/arch/common.h"

namespace temper::forward {

namespace {

Matrix f32_matrix(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Matrix m;
  m.data = reinterpret_cast<const uint8_t*>(v.data());
  m.dtype = DType::kF32;
  m.rows = rows;
  m.cols = cols;
  m.row_bytes = size_t(cols) * sizeof(float);
  return m;
}

// A slot's projection in HF's Llama-family module names, which a fused projection's blocks
// take in temper's adapters ("q_proj" .. "down_proj", in LoraSlot order).
const char* hf_projection_name(LoraSlot s) {
  static const char* const kNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return kNames[size_t(s)];
}

std::string shape_of(int64_t rows, int64_t cols) { return cat("(", rows, ", ", cols, ")"); }

}  // namespace

bool lora_slot_of_role(TensorRole role, LoraSlot& slot) {
  switch (role) {
    case TensorRole::kAttnQ: slot = LoraSlot::kQ; return true;
    case TensorRole::kAttnK: slot = LoraSlot::kK; return true;
    case TensorRole::kAttnV: slot = LoraSlot::kV; return true;
    case TensorRole::kAttnOut: slot = LoraSlot::kO; return true;
    case TensorRole::kFfnGate: slot = LoraSlot::kGate; return true;
    case TensorRole::kFfnUp: slot = LoraSlot::kUp; return true;
    case TensorRole::kFfnDown: slot = LoraSlot::kDown; return true;
    // Per-expert weights (one tensor per expert in HF); fused gate_up experts have no slot.
    case TensorRole::kFfnGateExps: slot = LoraSlot::kGate; return true;
    case TensorRole::kFfnUpExps: slot = LoraSlot::kUp; return true;
    case TensorRole::kFfnDownExps: slot = LoraSlot::kDown; return true;
    default: return false;
  }
}

std::vector<FusedBlock> fused_lora_blocks(const ExpectedTensor& e, const ModelConfig& cfg) {
  if (e.layer < 0 || !is_fused_projection(e.spec->role)) return {};
  // "model.layers.3.self_attn.qkv_proj.weight" -> "model.layers.3.self_attn."
  const std::string parent = e.hf_name.substr(0, e.hf_name.rfind('.', e.hf_name.size() - 8) + 1);
  std::vector<FusedBlock> out;
  int64_t row0 = 0;
  for (const RowBlock& b : fused_row_blocks(e.spec->role, cfg.layers.at(size_t(e.layer)))) {
    FusedBlock f{parent, LoraSlot::kQ, row0, b.rows};
    lora_slot_of_role(b.role, f.slot);
    f.module += hf_projection_name(f.slot);
    out.push_back(std::move(f));
    row0 += b.rows;
  }
  return out;
}

std::vector<LoraTarget> match_lora_to_base(const ModelDescription& base, const LoraAdapter& a,
                                           const std::string& path) {
  TEMPER_CHECK(base.arch, "the base model has no architecture description");
  const ModelConfig& cfg = base.config;
  const std::string who = cat("LoRA adapter ", escaped(path));
  TEMPER_CHECK(a.base_arch == base.arch->id, who, " was trained on a '", escaped(a.base_arch),
               "' model, but the base is '", base.arch->id, "'");
  // As temper train records it: a checkpoint's provenance, else the config.json as read (a GGUF
  // has neither, and only the shapes are checked).
  std::string base_sha = base.provenance.config_sha256;
  if (base_sha.empty() && !base.config_json.empty()) base_sha = sha256_hex(base.config_json);
  if (!a.base_config_sha256.empty() && !base_sha.empty() && a.base_config_sha256 != base_sha)
    warn(who, ": the base's config.json differs from the one it was trained on (shapes match "
              "so it is applied; check it is the intended base)");
  std::map<std::string, ExpectedTensor> by_module;
  std::map<std::string, FusedBlock> fused;  // module -> its rows in by_module's fused tensor
  for (ExpectedTensor& e : expected_tensors(*base.arch, cfg))
    if (e.hf_name.ends_with(".weight")) {
      for (FusedBlock& b : fused_lora_blocks(e, cfg)) {
        by_module.emplace(b.module, e);
        fused.emplace(b.module, std::move(b));
      }
      std::string module = e.hf_name.substr(0, e.hf_name.size() - 7);
      by_module.emplace(std::move(module), std::move(e));
    }
  std::vector<LoraTarget> out;
  std::vector<std::string> never_run;
  for (const LoraTensorPair& p : a.pairs) {
    auto it = by_module.find(p.module);
    // A projection the checkpoint holds but the model never runs (K/V of Gemma 4's KV-shared
    // layers): PEFT adapts it too, and there as here it changes nothing.
    if (it == by_module.end() && base.arch->ignorable && base.arch->ignorable(cfg, p.module + ".weight")) {
      never_run.push_back(p.module);
      continue;
    }
    LoraTarget t;
    t.pair = &p;
    const auto block = fused.find(p.module);
    if (block != fused.end()) t.slot = block->second.slot;
    TEMPER_CHECK(it != by_module.end() && it->second.layer >= 0 &&
                     (block != fused.end() || lora_slot_of_role(it->second.spec->role, t.slot)),
                 who, ": tensor '", escaped(p.module), "' is not one of the base's q/k/v/o/gate/up/down projections",
                 it != by_module.end() && is_fused_projection(it->second.spec->role)
                     ? " (a fused projection is adapted as its row blocks: q_proj, k_proj, v_proj or gate_proj, up_proj)"
                     : "");
    const ExpectedTensor& e = it->second;
    const int64_t rows = block != fused.end() ? block->second.rows : e.shape.empty() ? -1 : e.shape[0];
    t.row0 = block != fused.end() ? block->second.row0 : 0;
    TEMPER_CHECK(e.shape.size() == 2 && rows == p.out && e.shape[1] == p.in, who,
                 ": tensor '", escaped(p.module), "' is ", shape_of(p.out, p.in),
                 " (out, in) but the base's ", e.hf_name, block != fused.end() ? cat(" rows ", t.row0, "..") : "", " is ",
                 e.shape.size() == 2 ? shape_of(rows, e.shape[1]) : "not a matrix",
                 ": the adapter was made for another base");
    const LayerConfig& L = cfg.layers[size_t(e.layer)];
    if (e.spec->to_gguf == GgufTransform::kPermuteRopeQ) t.rope_permute_heads = L.n_head;
    if (e.spec->to_gguf == GgufTransform::kPermuteRopeK) t.rope_permute_heads = L.n_head_kv;
    t.tensor = e;
    out.push_back(std::move(t));
  }
  if (!never_run.empty())
    warn(who, ": ", never_run.size(), " adapted projections are ones this model never runs (e.g. '",
         escaped(never_run.front()), "': KV-shared layers reuse an earlier layer's K/V); they have no effect, "
         "as in the original model");
  return out;
}

std::shared_ptr<const LoraSet> LoraSet::bind(const ModelDescription& base, bool gguf_layout,
                                             std::span<const LoraBinding> adapters) {
  auto set = std::make_shared<LoraSet>();
  set->layers_.resize(size_t(base.config.n_layer));
  for (const LoraBinding& b : adapters) {
    const LoraAdapter& a = *b.adapter;
    for (const LoraTarget& t : match_lora_to_base(base, a, b.path)) {
      Update u;
      u.rank = a.rank;
      u.in = t.pair->in;
      u.out = t.pair->out;
      u.scale = b.multiplier * a.scale();
      u.a = t.pair->a;
      u.b = t.pair->b;
      if (gguf_layout && t.rope_permute_heads > 0)
        arch::permute_rope_rows(u.b.data(), u.out, u.rank, t.rope_permute_heads);
      if (t.tensor.expert >= 0)
        set->experts_[{t.tensor.layer, t.tensor.expert, int(t.slot)}].push_back(std::move(u));
      else
        set->layers_[size_t(t.tensor.layer)][size_t(t.slot)].push_back(std::move(u));
    }
  }
  return set;
}

void LoraSet::add(float* y, const float* x, int layer, LoraSlot slot, int64_t n_tokens) const {
  if (layer < 0 || size_t(layer) >= layers_.size()) return;
  apply(layers_[size_t(layer)][size_t(slot)], y, x, n_tokens);
}

void LoraSet::add_expert(float* y, const float* x, int layer, int expert, LoraSlot slot, int64_t n_tokens) const {
  auto it = experts_.find({layer, expert, int(slot)});
  if (it != experts_.end()) apply(it->second, y, x, n_tokens);
}

bool LoraSet::has_expert_adapters(int layer) const {
  auto it = experts_.lower_bound({layer, 0, 0});
  return it != experts_.end() && std::get<0>(it->first) == layer;
}

void LoraSet::apply(const std::vector<Update>& updates, float* y, const float* x, int64_t n_tokens) {
  if (updates.empty()) return;
  std::vector<float> ax, bax, scratch;
  for (const Update& u : updates) {
    ax.resize(size_t(n_tokens * u.rank));
    bax.resize(size_t(n_tokens * u.out));
    matmul_forward(ax.data(), x, f32_matrix(u.a, u.rank, u.in), n_tokens, u.rank, scratch);
    matmul_forward(bax.data(), ax.data(), f32_matrix(u.b, u.out, u.rank), n_tokens, u.out,
                   scratch);
    const int64_t n = n_tokens * u.out;
    for (int64_t i = 0; i < n; ++i) y[i] += u.scale * bax[i];
  }
}

}  // namespace temper::forward
