// Qwen 3 MoE: Qwen 3 attention with a sparse MLP (softmax router, top-k, optional top-k
// renormalisation, no shared expert). Experts are stored one tensor per expert in HF
// (mlp.experts.{E}.*_proj) and stacked into ffn_*_exps in GGUF. Layers listed in
// mlp_only_layers (or off the decoder_sparse_step grid) keep a dense MLP.
// The fused transformers-v5 layout (mlp.experts.gate_up_proj) is not accepted: a config alone
// cannot say which layout a checkpoint uses, and the tensor tables are per config.
#include <algorithm>

#include "model/arch/common.h"
#include "model/gguf_keys.h"
#include "model/gguf_kv.h"

namespace temper {

namespace {
using namespace arch::shapes;

// Qwen 3 rows plus the router and the per-expert tensors.
std::vector<TensorSpec> qwen3moe_tensors() {
  std::vector<TensorSpec> t = arch::llama_style_tensors(/*qk_norm=*/true, /*permute_qk=*/false);
  t.insert(t.end(), {
      {.role = TensorRole::kFfnGateInp, .hf_name = "model.layers.{L}.mlp.gate.weight",
       .gguf_name = "blk.{L}.ffn_gate_inp.weight", .flags = kPerLayer,
       .quant_class = QuantClass::kKeepF32, .shape = router},
        {.role = TensorRole::kFfnGateExps,
       .hf_name = "model.layers.{L}.mlp.experts.{E}.gate_proj.weight",
       .gguf_name = "blk.{L}.ffn_gate_exps.weight", .flags = kPerLayer | kPerExpert,
       .quant_class = QuantClass::kFfnGateExps, .shape = expert_up},
        {.role = TensorRole::kFfnUpExps,
       .hf_name = "model.layers.{L}.mlp.experts.{E}.up_proj.weight",
       .gguf_name = "blk.{L}.ffn_up_exps.weight", .flags = kPerLayer | kPerExpert,
       .quant_class = QuantClass::kFfnUpExps, .shape = expert_up},
        {.role = TensorRole::kFfnDownExps,
       .hf_name = "model.layers.{L}.mlp.experts.{E}.down_proj.weight",
       .gguf_name = "blk.{L}.ffn_down_exps.weight", .flags = kPerLayer | kPerExpert,
       .quant_class = QuantClass::kFfnDownExps, .shape = expert_down},
  });
  return t;
}
const std::vector<TensorSpec> kQwen3MoeTensors = qwen3moe_tensors();

ModelConfig parse_qwen3moe(const Json& root) {
  const Json merged = arch::merge_text_config(root);
  const arch::ConfigView c(merged);
  ModelConfig cfg;
  // HF Qwen3MoeConfig defaults: max_position_embeddings 32768, rms_norm_eps 1e-6, untied,
  // head_dim 128, decoder_sparse_step 1, norm_topk_prob false.
  arch::read_common_fields(
      c, "qwen3moe", {.hf_architecture = "Qwen3MoeForCausalLM", .n_ctx = 32768}, cfg);
  arch::require_string(c, "hidden_act", "silu");
  arch::require_false(c, "attention_bias");
  arch::require_false(c, "use_sliding_window");
  cfg.act = Activation::kSilu;
  cfg.rope_style = RopeStyle::kHalf;
  cfg.qk_norm = true;
  cfg.moe_norm_topk = c.get_bool("norm_topk_prob", false);
  TEMPER_CHECK(c.get_int("shared_expert_intermediate_size", 0) == 0,
               "config.json: key 'shared_expert_intermediate_size' is set, but Qwen3-MoE has no "
               "shared expert in temper");

  const LayerConfig attention = arch::read_uniform_attention(c, cfg.d_model, 128);
  const int n_expert = c.get_int("num_experts");
  const int n_expert_used = c.get_int("num_experts_per_tok");
  const int d_ff_expert = c.get_int("moe_intermediate_size");
  const int sparse_step = c.get_int("decoder_sparse_step", 1);
  TEMPER_CHECK(sparse_step > 0, "config.json: key 'decoder_sparse_step' must be > 0, got ",
               sparse_step);
  const std::vector<int> mlp_only = c.get_int_list("mlp_only_layers");
  for (int i = 0; i < cfg.n_layer; ++i) {
    LayerConfig layer = attention;
    layer.kv_source_layer = i;
    const bool dense = std::find(mlp_only.begin(), mlp_only.end(), i) != mlp_only.end() ||
                       n_expert == 0 || (i + 1) % sparse_step != 0;
    if (dense) {
      layer.d_ff = c.get_int("intermediate_size");
    } else {
      layer.ffn = FfnKind::kMoe;
      layer.n_expert = n_expert;
      layer.n_expert_used = n_expert_used;
      layer.d_ff_expert = d_ff_expert;
    }
    cfg.layers.push_back(layer);
  }
  validate_config(cfg);
  return cfg;
}

// What llama.cpp (release in .llama-ref) cannot represent. src/models/qwen3moe.cpp: the graph
// calls build_moe_ffn(..., LLM_FFN_SILU, /*norm_w=*/true, ...), always renormalising the
// top-k router weights (no key turns it off); load_arch_tensors creates ffn_gate_inp and the
// expert tensors of every layer as required, so a dense layer fails to load.
std::vector<LlamaCppIssue> qwen3moe_llama_cpp_issues(const ModelConfig& cfg, const GgufKvLookup&) {
  std::vector<LlamaCppIssue> issues = arch::rope_freq_factors_issue(cfg, "src/models/qwen3moe.cpp");
  if (!cfg.moe_norm_topk)
    issues.push_back({"norm_topk_prob", "is false, but llama.cpp's qwen3moe graph always renormalises the top-k router "
                      "weights to sum 1 (src/models/qwen3moe.cpp: build_moe_ffn with norm_w = true)"});
  for (int il = 0; il < cfg.n_layer; ++il)
    if (cfg.layers[il].ffn != FfnKind::kMoe) {
      issues.push_back({"mlp_only_layers / decoder_sparse_step", cat("layer ", il, " is a dense MLP layer, but llama.cpp's "
                        "qwen3moe loader requires router and experts in every layer (src/models/qwen3moe.cpp "
                        "load_arch_tensors: ffn_gate_inp is a required tensor)")});
      break;
    }
  return issues;
}

// ---- GGUF: llama.cpp conversion/qwen.py Qwen3MoeModel, src/models/qwen3moe.cpp ----------

using namespace gguf_meta;

void qwen3moe_parameters(ArchKvContext& c) {  // Qwen2MoeModel.set_gguf_parameters
  text_model_parameters(c);
  if (const Json* v = c.hp.get("moe_intermediate_size"))
    c.kv.set(c.key("expert_feed_forward_length"), u32_or_array_of(*v, "moe_intermediate_size"));
  if (const Json* v = c.hp.get("shared_expert_intermediate_size"))
    c.kv.set(c.key("expert_shared_feed_forward_length"), u32_of(*v, "shared_expert_intermediate_size"));
}

// Qwen2MoeModel inherits TextModel.set_vocab (GPT-2 BPE).
void qwen3moe_vocab(ArchKvContext& c) { set_vocab_gpt2(c); }

// Qwen 3 MoE: the graph renormalises the top-k weights (norm_w = true).
void finish_qwen3moe(const GgufFile&, const GgufKeys& k, ModelConfig& cfg) {
  cfg.moe_norm_topk = k.has("expert_weights_norm") ? k.number("expert_weights_norm") != 0 : true;
}

}  // namespace

extern const ArchSpec kQwen3MoeArch;
const ArchSpec kQwen3MoeArch{
    .id = "qwen3moe",
    .hf_architectures = {"Qwen3MoeForCausalLM"},
    .gguf_arch = "qwen3moe",
    .parse_hf_config = parse_qwen3moe,
    .tensors = kQwen3MoeTensors,
    .canonical_name = arch::canonical_hf_name,
    .ignorable = arch::ignore_rotary_buffers,
    .llama_cpp_issues = qwen3moe_llama_cpp_issues,
    .gguf_write = {.parameters = qwen3moe_parameters, .vocab = qwen3moe_vocab},
    .gguf_read = GgufReadRules{.rope_style = RopeStyle::kHalf, .act = Activation::kSilu, .qk_norm = true,
                               .finish = finish_qwen3moe},
};

}  // namespace temper
