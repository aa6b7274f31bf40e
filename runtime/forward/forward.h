// The reference forward pass: one generic decoder driven by the per-layer ModelConfig's
// features, for every architecture the registry describes. fp32 activations, weights kept in
// their stored type. No architecture is named here (a grep test may enforce it).
//
//   auto src = SafetensorsModel::open(dir);
//   auto model = forward::Model::load(*src, load_hf_description(dir));  // src must outlive it
//   forward::Session s(*model, 512);
//   std::vector<float> logits = s.eval(prompt_ids);       // (n_tokens, n_vocab)
//   logits = s.eval(std::span(&next_id, 1));              // appends through the KV cache
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "formats/tensor_source.h"
#include "model/model_desc.h"

namespace temper::forward {

struct Weights;
class LoraSet;

struct LoadOptions {
  // HF multiplies token embeddings by embed_scale cast to the embedding's dtype (bf16:
  // sqrt(1536) = 39.19 -> 39.25); the GGUF runtime multiplies by the exact value.
  bool embed_scale_in_weight_dtype = true;
  // kGguf: tensors are named by the arch table's gguf_name and experts are stacked; the GGUF
  // loader also sets rope_style = kInterleaved / norm_weight_offset = 0 in the config it passes.
  bool gguf_names = false;
};

class Model {
 public:
  // Binds the source's tensors by role (no copies for mapped sources). `src` must outlive the
  // model. Throws Error naming a missing or malformed tensor.
  static std::unique_ptr<Model> load(const TensorSource& src, const ModelDescription& desc,
                                     const LoadOptions& opts = {});
  ~Model();
  const ModelConfig& config() const { return cfg_; }
  const Weights& weights() const { return *w_; }
  float embed_scale() const { return embed_scale_; }
  float ple_embed_scale() const { return ple_embed_scale_; }
  // LoRA adapters added after the projections they target (forward/lora_apply.h); null = none.
  // Set before any Session runs.
  void set_lora(std::shared_ptr<const LoraSet> lora) { lora_ = std::move(lora); }
  const LoraSet* lora() const { return lora_.get(); }

 private:
  Model() = default;
  ModelConfig cfg_;
  std::unique_ptr<Weights> w_;
  float embed_scale_ = 1, ple_embed_scale_ = 1;
  std::shared_ptr<const LoraSet> lora_;
};

// One sequence: a KV cache of n_ctx positions and the activation buffers.
class Session {
 public:
  Session(const Model& model, int n_ctx);
  ~Session();
  // Processes `tokens` at positions n_past() .. n_past()+n-1 (all tokens of the batch through
  // each layer at once) and appends them to the cache. Returns logits (n, n_vocab) row-major,
  // or only the last row when all_logits is false. Throws Error if the context would overflow
  // or a token id is out of range.
  std::vector<float> eval(std::span<const int32_t> tokens, bool all_logits = true);
  void reset() { n_past_ = 0; }
  int n_past() const { return n_past_; }
  int n_ctx() const { return n_ctx_; }

 private:
  struct State;
  const Model& model_;
  int n_ctx_;
  int n_past_ = 0;
  std::unique_ptr<State> st_;
};

}  // namespace temper::forward
