// LoRA adapters applied at inference time (eval/compare/generate --lora): after each adapted
// projection y = x·Wᵀ the decoder adds  y += m · s · (x·Aᵀ)·Bᵀ, PEFT's
// `W x + scaling · B(A(x))` with s = alpha/r (alpha/sqrt(r) for rsLoRA) and m the user's
// multiplier (--lora FILE:m). Several adapters on one projection add up in the order given.
//
//   LoraAdapter a = read_lora_adapter("ft.h5");
//   model->set_lora(forward::LoraSet::bind(desc, /*gguf_layout=*/false, {{"ft.h5", 1.0f, &a}}));
//
// Dimension glossary: T = tokens, K = in features, N = out features, r = rank.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "formats/lora_adapter.h"
#include "model/model_desc.h"

namespace temper::forward {

// The projections an adapter can sit on (PEFT targets q_proj ... down_proj); gate/up/down also
// name an expert's projections (LoraTarget::tensor.expert >= 0: Qwen 3 MoE's per-expert weights).
enum class LoraSlot : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
constexpr int kNumLoraSlots = 7;

// One adapter pair matched to the base tensor it modifies.
struct LoraTarget {
  const LoraTensorPair* pair = nullptr;
  ExpectedTensor tensor;  // the base's weight (hf_name "….q_proj.weight", gguf_name, shape)
  LoraSlot slot = LoraSlot::kQ;
  // > 0 when llama.cpp's converter permutes this weight's rows for interleaved RoPE: the
  // number of heads (GGUF layouts need B's rows permuted the same way).
  int rope_permute_heads = 0;
  // The pair's first row in `tensor` when that is a fused projection (Phi-3's qkv_proj or
  // gate_up_proj, whose row blocks temper adapts as q/k/v and gate/up): its rows are
  // [row0, row0 + pair->out) of tensor.shape[0].
  int64_t row0 = 0;
};

// A fused projection's row blocks, in storage order, as the separate modules temper's adapters
// name them: qkv_proj -> q_proj, k_proj, v_proj; gate_up_proj -> gate_proj, up_proj (the same
// parent module). Empty when `e` is not fused.
struct FusedBlock {
  std::string module;  // e.g. "model.layers.3.self_attn.k_proj"
  LoraSlot slot;
  int64_t row0, rows;
};
std::vector<FusedBlock> fused_lora_blocks(const ExpectedTensor& e, const ModelConfig& cfg);

// Matches every pair of `adapter` (read from `path`, for messages) to the base's projections.
// Throws Error naming the adapter file and tensor: another architecture, a module the base
// lacks or that is not one of the seven projections, a shape that differs from the base's.
// Warns when the base's config.json hash differs from the one the adapter records.
std::vector<LoraTarget> match_lora_to_base(const ModelDescription& base, const LoraAdapter& adapter,
                                           const std::string& path);

// An adapter to bind: its path (for messages), the user's multiplier, and its contents.
struct LoraBinding {
  std::string path;
  float multiplier = 1;
  const LoraAdapter* adapter = nullptr;
};

class LoraSet {
 public:
  // Checks every adapter against the base and keeps A and B (f32) ready to apply. With
  // `gguf_layout` the base's tensors are the GGUF ones (Llama q/k rows permuted for llama.cpp's
  // interleaved RoPE), so B's rows of those projections are permuted the same way. Throws
  // Error naming the adapter file and tensor: another architecture, a module the base lacks
  // or that is not one of the seven projections, a shape that differs from the base's.
  static std::shared_ptr<const LoraSet> bind(const ModelDescription& base, bool gguf_layout,
                                             std::span<const LoraBinding> adapters);

  // y (T, N) += Σ over the adapters on (layer, slot) of m · s · (x·Aᵀ)·Bᵀ, x (T, K).
  void add(float* y, const float* x, int layer, LoraSlot slot, int64_t n_tokens) const;
  // The same for expert `expert`'s gate/up/down projection of `layer` (x: its routed rows).
  void add_expert(float* y, const float* x, int layer, int expert, LoraSlot slot, int64_t n_tokens) const;
  bool has_expert_adapters(int layer) const;

 private:
  struct Update {
    int64_t rank = 0, in = 0, out = 0;
    float scale = 0;          // multiplier · adapter scale
    std::vector<float> a, b;  // (r, K), (N, r)
  };
  static void apply(const std::vector<Update>& updates, float* y, const float* x, int64_t n_tokens);
  std::vector<std::array<std::vector<Update>, kNumLoraSlots>> layers_;
  std::map<std::tuple<int, int, int>, std::vector<Update>> experts_;  // (layer, expert, slot)
};

// Maps the arch table's tensor roles to slots; false for roles no adapter can target.
bool lora_slot_of_role(TensorRole role, LoraSlot& slot);

}  // namespace temper::forward
