// temper train: LoRA fine-tuning on the CPU (issue 9). The base model stays frozen in its
// stored type (f32/f16/bf16 or any GGUF block type: QLoRA); adapters A (r, in) and B (out, r)
// sit on any subset of the seven projections and are the only trainable parameters. Every
// architecture the runtime's generic decoder runs (Llama, Qwen 3, Qwen 3 MoE, Gemma 3,
// Gemma 4 dense, with PLE and KV sharing, and MoE); expert weights are not adapter targets.
//
//   auto model = forward::Model::load(*src, desc);
//   train::LoraModel lora(*model, {.rank = 8, .alpha = 16, .targets = train::all_targets()});
//   train::Batch batch = train::pack({example1, example2});
//   double loss_sum = lora.forward_backward(batch, 1.0f / batch.n_trained());  // adds to grads
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forward/forward.h"
#include "train/gemm_bf16.h"

namespace CLI {
class App;
}

namespace temper::train {

// Registers `temper train` (train/cli.cpp).
void add_train_command(CLI::App& app);

// The projections an adapter can sit on, with PEFT's module names. The expert targets are
// opt-in: one adapter per expert of each MoE layer whose experts are separate weights
// (Qwen 3 MoE's mlp.experts.N.gate_proj ...).
enum class Target : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown, kExpertGate, kExpertUp, kExpertDown };
constexpr int kNumTargets = 10;
// "q", "k", "v", "o", "gate", "up", "down", "expert_gate", "expert_up", "expert_down"
std::string_view target_name(Target t);
// "self_attn.q_proj", ..., "mlp.down_proj"; experts: "mlp.experts.*.gate_proj" (see hf_module)
std::string_view target_hf_module(Target t);
std::optional<Target> target_from_name(std::string_view name);
std::vector<Target> all_targets();  // the seven dense projections (not the expert targets)
bool is_expert_target(Target t);

struct LoraConfig {
  int rank = 8;
  float alpha = 16;
  bool rslora = false;  // scale alpha / sqrt(rank) instead of alpha / rank
  std::vector<Target> targets;
  uint64_t seed = 0;  // initialisation of A
  // Compute type of the products with the frozen base weights (gemm_bf16.h); kBf16 only
  // where bf16_native(). Adapters, gradients and everything else stay f32.
  Precision precision = Precision::kF32;
  float scale() const;
};

// One training example: tokens and, per token, whether predicting it (from the tokens before
// it) is trained. trained[0] is ignored: the first token has no prefix.
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> trained;
};

// Examples packed into one sequence: positions restart at each example and no token attends
// across an example boundary, so packing n examples computes exactly what n separate
// sequences would.
struct Batch {
  std::vector<int32_t> tokens;     // (n) inputs
  std::vector<int32_t> targets;    // (n) the next token of the same example, or -1: not trained
  std::vector<int32_t> positions;  // (n) position within its example
  std::vector<int32_t> first_key;  // (n) index of its example's first token
  int64_t n_trained() const;
};
Batch pack(const std::vector<Example>& examples);

// One adapter: PEFT's lora_A (rank, in) and lora_B (out, rank) of one projection of one layer.
// B's rows are always in the Hugging Face checkpoint's order, also on a GGUF base whose q/k
// rows llama.cpp stored permuted (see LoraModel), so an adapter trained on any file of a
// model is the same adapter.
struct LoraPair {
  int layer = 0;
  Target target = Target::kQ;
  int expert = -1;  // expert targets: which expert of the layer
  int64_t in = 0, out = 0;
  std::vector<float> a, b;     // (rank, in), (out, rank)
  std::vector<float> da, db;   // gradients, same shapes
  // The module's HF name inside its layer: "self_attn.q_proj", "mlp.experts.3.gate_proj".
  std::string hf_module() const;
};

// A frozen base with adapters. Throws Error naming the feature if the base uses one this slice
// does not train, or a bad rank/target.
class LoraModel {
 public:
  LoraModel(const forward::Model& base, const LoraConfig& cfg);
  ~LoraModel();
  const LoraConfig& config() const { return cfg_; }
  // Adapters in a fixed order: layer-major, then Target order (expert targets: one per
  // expert, in expert order).
  std::vector<LoraPair>& pairs() { return pairs_; }
  const std::vector<LoraPair>& pairs() const { return pairs_; }
  // The pair on layer's target t, or nullptr; for an expert target, expert 0's (the layer's
  // other experts follow it in pairs()).
  LoraPair* find(int layer, Target t);
  void zero_grads();
  // Loss of the batch (sum of -log p over trained tokens) from a full forward, and
  // grad_scale · its gradient added to every pair's da/db by the backward. Activations are
  // recomputed per layer (only each layer's input is kept between the passes) unless
  // set_recompute(false). Throws Error for a token id outside the vocabulary.
  double forward_backward(const Batch& batch, float grad_scale);
  // false: keep every layer's activations from the forward for the backward instead of
  // recomputing them (more memory, less work: see activation_bytes in estimate.h). The
  // gradients are bit-identical either way.
  void set_recompute(bool recompute) { keep_activations_ = !recompute; }
  // Loss only (no gradients).
  double loss(const Batch& batch);

 private:
  struct Work;
  const forward::Model& base_;
  LoraConfig cfg_;
  std::vector<LoraPair> pairs_;
  // [layer][target] -> pairs_ index or -1; expert targets: the index of expert 0's pair, the
  // layer's other experts follow in order.
  std::vector<std::vector<int>> index_;
  std::unique_ptr<Work> work_;
  bool keep_activations_ = false;
  // Per pair: the HF row of each of the base's output rows, or empty when they agree. Llama
  // GGUFs store q/k rows permuted for llama.cpp's interleaved RoPE (rope_style kInterleaved);
  // the pass then runs B with its rows in the base's order and returns dB in HF order.
  std::vector<std::vector<int32_t>> hf_row_;
  double run(const Batch& batch, float grad_scale, bool backward);
};

}  // namespace temper::train
