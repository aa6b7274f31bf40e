// validate_config: the invariants the forward pass, the exporters and the trainer rely on,
// checked once after parsing, so that later code can index without re-checking.
#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace temper {

namespace {

void validate_layer(const ModelConfig& cfg, int i) {
  const LayerConfig& l = cfg.layers[i];
  const auto where = [&] { return cat("config: layer ", i, ": "); };
  TEMPER_CHECK(l.n_head > 0, where(), "n_head must be > 0, got ", l.n_head);
  TEMPER_CHECK(l.n_head_kv > 0 && l.n_head % l.n_head_kv == 0, where(), "n_head_kv (",
               l.n_head_kv, ") must be > 0 and divide n_head (", l.n_head, ")");
  TEMPER_CHECK(l.head_dim > 0 && l.head_dim % 2 == 0, where(),
               "head_dim must be positive and even, got ", l.head_dim);
  TEMPER_CHECK(l.n_rot > 0 && l.n_rot <= l.head_dim && l.n_rot % 2 == 0, where(), "n_rot (",
               l.n_rot, ") must be even and in 1..head_dim (", l.head_dim, ")");
  TEMPER_CHECK(l.rope_freq_factors.empty() ||
                   static_cast<int>(l.rope_freq_factors.size()) == l.n_rot / 2,
               where(), "rope_freq_factors has ", l.rope_freq_factors.size(),
               " entries, expected n_rot/2 = ", l.n_rot / 2);
  for (float f : l.rope_freq_factors)
    TEMPER_CHECK(f > 0 && !std::isnan(f), where(), "rope_freq_factors must be > 0, got ", f);
  if (!l.rope_freq_factors_long.empty()) {
    TEMPER_CHECK(static_cast<int>(l.rope_freq_factors_long.size()) == l.n_rot / 2, where(),
                 "rope_freq_factors_long has ", l.rope_freq_factors_long.size(),
                 " entries, expected n_rot/2 = ", l.n_rot / 2);
    TEMPER_CHECK(l.rope_long_after > 0, where(), "long RoPE factors need rope_long_after > 0, got ",
                 l.rope_long_after);
  }
  for (float f : l.rope_freq_factors_long)
    TEMPER_CHECK(f > 0 && !std::isnan(f), where(), "rope_freq_factors_long must be > 0, got ", f);
  TEMPER_CHECK(l.rope_long_after >= 0, where(), "rope_long_after must be >= 0, got ", l.rope_long_after);
  TEMPER_CHECK(l.rope_attn_factor > 0 && std::isfinite(l.rope_attn_factor), where(),
               "rope_attn_factor must be > 0, got ", l.rope_attn_factor);
  TEMPER_CHECK(l.rope_theta > 0 && std::isfinite(l.rope_theta), where(),
               "rope_theta must be > 0, got ", l.rope_theta);
  TEMPER_CHECK(l.rope_pos_scale > 0 && std::isfinite(l.rope_pos_scale), where(),
               "rope_pos_scale must be > 0, got ", l.rope_pos_scale);
  TEMPER_CHECK(l.window >= 0, where(), "window must be >= 0, got ", l.window);
  TEMPER_CHECK(l.d_ff >= 0, where(), "d_ff must be >= 0, got ", l.d_ff);

  // KV sharing: the donor is an earlier (or this) layer that owns its K/V and has the same
  // K/V geometry and mask.
  const int src = l.kv_source_layer;
  TEMPER_CHECK(src >= 0 && src <= i, where(), "kv_source_layer (", src, ") must be in 0..", i);
  if (src != i) {
    const LayerConfig& d = cfg.layers[src];
    TEMPER_CHECK(d.kv_source_layer == src, where(), "kv_source_layer ", src,
                 " does not own its K/V (it reads layer ", d.kv_source_layer, ")");
    TEMPER_CHECK(d.head_dim == l.head_dim && d.n_head_kv == l.n_head_kv && d.window == l.window,
                 where(), "K/V geometry differs from its kv_source_layer ", src);
    TEMPER_CHECK(!l.k_eq_v, where(), "k_eq_v is set but the layer does not own its K/V");
  }

  const bool dense = l.ffn != FfnKind::kMoe, moe = l.ffn != FfnKind::kDense;
  if (dense) TEMPER_CHECK(l.d_ff > 0, where(), "a dense MLP needs d_ff > 0");
  if (moe) {
    TEMPER_CHECK(l.n_expert > 0 && l.n_expert_used > 0 && l.n_expert_used <= l.n_expert,
                 where(), "MoE needs 0 < n_expert_used (", l.n_expert_used, ") <= n_expert (",
                 l.n_expert, ")");
    TEMPER_CHECK(l.d_ff_expert > 0, where(), "MoE needs d_ff_expert > 0");
  } else {
    TEMPER_CHECK(l.n_expert == 0 && l.n_expert_used == 0 && l.d_ff_expert == 0, where(),
                 "expert fields are set on a dense layer");
  }
}

}  // namespace

const std::vector<float>& rope_factors_for(const LayerConfig& layer, int n_ctx) {
  const bool use_long = !layer.rope_freq_factors_long.empty() && n_ctx > layer.rope_long_after;
  return use_long ? layer.rope_freq_factors_long : layer.rope_freq_factors;
}

void validate_config(const ModelConfig& cfg) {
  TEMPER_CHECK(!cfg.arch.empty(), "config: arch is empty");
  TEMPER_CHECK(cfg.d_model > 0, "config: d_model must be > 0, got ", cfg.d_model);
  TEMPER_CHECK(cfg.n_vocab > 0, "config: n_vocab must be > 0, got ", cfg.n_vocab);
  TEMPER_CHECK(cfg.n_layer > 0, "config: n_layer must be > 0, got ", cfg.n_layer);
  TEMPER_CHECK(static_cast<int>(cfg.layers.size()) == cfg.n_layer, "config: ",
               cfg.layers.size(), " layer configs for n_layer = ", cfg.n_layer);
  TEMPER_CHECK(cfg.n_ctx_train >= 0, "config: n_ctx_train must be >= 0, got ", cfg.n_ctx_train);
  TEMPER_CHECK(cfg.norm_eps > 0 && std::isfinite(cfg.norm_eps),
               "config: norm_eps must be > 0, got ", cfg.norm_eps);
  TEMPER_CHECK(cfg.embed_scale >= 0 && cfg.attn_scale >= 0 && cfg.final_softcap >= 0,
               "config: embed_scale, attn_scale and final_softcap must be >= 0");
  TEMPER_CHECK(cfg.ple_dim >= 0, "config: ple_dim must be >= 0, got ", cfg.ple_dim);
  if (cfg.ple_dim > 0)
    TEMPER_CHECK(cfg.ple_vocab > 0, "config: per-layer embeddings need ple_vocab > 0");
  for (int id : {cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id})
    TEMPER_CHECK(id >= -1, "config: token ids must be >= 0 (or -1 for none), got ", id);
  for (int i = 0; i < cfg.n_layer; ++i) validate_layer(cfg, i);
}

}  // namespace temper
