// Llama (2, 3.x): pre-norm decoder, SiLU-gated MLP, GQA, RoPE with optional "llama3" or
// "linear" scaling. llama.cpp permutes q/k rows for its interleaved RoPE (kPermuteRopeQ/K).
#include "model/arch/common.h"
#include "model/gguf_kv.h"

namespace temper {

namespace {

const std::vector<TensorSpec> kLlamaTensors = arch::llama_style_tensors(false, true);

ModelConfig parse_llama(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // HF LlamaConfig defaults: max_position_embeddings 2048, rms_norm_eps 1e-6, untied.
  arch::read_common_fields(c, "llama", {.hf_architecture = "LlamaForCausalLM", .n_ctx = 2048},
                           cfg);
  arch::require_string(c, "hidden_act", "silu");
  arch::require_false(c, "attention_bias");
  arch::require_false(c, "mlp_bias");
  cfg.act = Activation::kSilu;
  cfg.rope_style = RopeStyle::kHalf;

  LayerConfig layer = arch::read_uniform_attention(c, cfg.d_model, 0);
  layer.d_ff = c.get_int("intermediate_size");
  arch::repeat_layer(cfg, layer);
  validate_config(cfg);
  return cfg;
}

// ---- GGUF metadata: llama.cpp conversion/llama.py LlamaModel ----------------------------

using namespace gguf_meta;

void llama_parameters(ArchKvContext& c) {
  text_model_parameters(c);
  c.kv.set(c.key("vocab_size"), u32_of(c.hp.at("vocab_size"), "vocab_size"));
  if (const Json* hd = c.hp.get("head_dim")) {
    c.kv.set(c.key("rope.dimension_count"), u32_of(*hd, "head_dim"));
  } else {
    const Json& h = c.hp.at("hidden_size");
    const Json& n = c.hp.at("num_attention_heads");
    TEMPER_CHECK(h.is_number_integer() && n.is_number_integer() && n.get<int64_t>() > 0, c.hp.source(),
                 ": hidden_size and num_attention_heads must be integers");
    c.kv.set(c.key("rope.dimension_count"), u32_of(Json(h.get<int64_t>() / n.get<int64_t>()), "hidden_size / num_attention_heads"));
  }
}

void llama_vocab(ArchKvContext& c) {
  if (!c.desc.tokenizer.tokenizer_config_json.empty()) {
    const Json tc = parse_json(c.desc.tokenizer.tokenizer_config_json, "tokenizer_config.json");
    if (const Json* p = get_in(tc, "add_prefix_space"))
      c.kv.set("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(truthy(*p)));
  }
  if (!set_vocab_sentencepiece(c) && !set_vocab_llama_hf(c)) set_vocab_gpt2(c);
  // Granite small models (vocab 49152) do not add BOS.
  if (const Json* v = c.hp.get("vocab_size"); v && *v == 49152)
    c.kv.set("tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(false));
}

}  // namespace

extern const ArchSpec kLlamaArch;
const ArchSpec kLlamaArch{
    .id = "llama",
    .hf_architectures = {"LlamaForCausalLM"},
    .gguf_arch = "llama",
    .parse_hf_config = parse_llama,
    .tensors = kLlamaTensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
    // No llama.cpp limits (release in .llama-ref): llama_model_base::load_hparams
    // (src/llama-model.cpp) throws "invalid n_rot" for LLM_ARCH_LLAMA when rope.dimension_count
    // != key_length, but both come from head_dim (or hidden/heads), so they agree; linear
    // rope.scaling.* applies to every layer there; llama3 scaling is the rope_freqs tensor,
    // which src/models/llama.cpp applies. Other RoPE types temper refuses when reading.
    .llama_cpp_issues = {},
    .gguf_write = {.parameters = llama_parameters, .vocab = llama_vocab},
    // Interleaved RoPE: the converter permuted q/k rows (kPermuteRopeQ/K).
    .gguf_read = GgufReadRules{.rope_style = RopeStyle::kInterleaved, .act = Activation::kSilu},
};

}  // namespace temper
