// Mistral (7B v0.1-v0.3, Nemo, Small text): the Llama decoder, plus a sliding attention window
// on every layer when config.json sets one (HF MistralConfig defaults it to 4096; v0.2+ and Nemo
// set null). llama.cpp's converter treats it as Llama (conversion/llama.py LlamaModel registers
// "MistralForCausalLM"): general.architecture "llama", q/k rows permuted, no window key, so a
// Mistral GGUF reads back as Llama (gguf_read stays empty here).
#include "model/arch/common.h"

namespace temper {

extern const ArchSpec kLlamaArch;  // LlamaModel writes Mistral's GGUF metadata

namespace {

const std::vector<TensorSpec> kMistralTensors = arch::llama_style_tensors(false, true);

ModelConfig parse_mistral(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // HF MistralConfig defaults: max_position_embeddings 4096 * 32, rms_norm_eps 1e-6, untied,
  // head_dim hidden / heads, sliding_window 4096.
  arch::read_common_fields(c, "mistral", {.hf_architecture = "MistralForCausalLM", .n_ctx = 4096 * 32}, cfg);
  arch::require_string(c, "hidden_act", "silu");
  arch::require_false(c, "attention_bias");
  cfg.act = Activation::kSilu;
  cfg.rope_style = RopeStyle::kHalf;

  LayerConfig layer = arch::read_uniform_attention(c, cfg.d_model, 0);
  layer.d_ff = c.get_int("intermediate_size");
  const bool has_key = c.json().contains("sliding_window");
  layer.window = has_key ? c.get_int("sliding_window", 0) : 4096;
  TEMPER_CHECK(layer.window >= 0, "config.json: key 'sliding_window' must be >= 0, got ", layer.window);
  arch::repeat_layer(cfg, layer);
  validate_config(cfg);
  return cfg;
}

// llama.cpp's llama graph (src/models/llama.cpp) attends causally over the whole context: a
// window shorter than the training context changes every logit past it.
std::vector<LlamaCppIssue> mistral_llama_cpp_issues(const ModelConfig& cfg, const GgufKvLookup&) {
  const int window = cfg.layers.at(0).window;
  if (window > 0 && window < cfg.n_ctx_train)
    return {{"sliding_window", cat("attention is limited to the last ", window, " tokens, but llama.cpp runs Mistral "
                                   "as Llama with full causal attention (src/models/llama.cpp builds no sliding-window "
                                   "mask; the converter writes no window key)")}};
  return {};
}

// LlamaModel writes Mistral's GGUF metadata. Called at run time, when kLlamaArch is initialised
// (copying its gguf_write into the initialiser below would depend on static-init order).
void mistral_gguf_parameters(gguf_meta::ArchKvContext& c) { kLlamaArch.gguf_write.parameters(c); }
void mistral_gguf_vocab(gguf_meta::ArchKvContext& c) { kLlamaArch.gguf_write.vocab(c); }

}  // namespace

extern const ArchSpec kMistralArch;
const ArchSpec kMistralArch{
    .id = "mistral",
    .hf_architectures = {"MistralForCausalLM"},
    .gguf_arch = "llama",
    .parse_hf_config = parse_mistral,
    .tensors = kMistralTensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
    .llama_cpp_issues = mistral_llama_cpp_issues,
    .gguf_write = {.parameters = mistral_gguf_parameters, .vocab = mistral_gguf_vocab},
    .gguf_read = std::nullopt,  // its GGUFs are "llama" ones: Llama reads them
};

}  // namespace temper
