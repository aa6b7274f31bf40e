// Private to the checkpoint code: the field tables of /config, /config/layers and /tokenizer,
// shared by writer and reader so the two cannot drift. A new ModelConfig / LayerConfig /
// TokenizerAssets field needs one line here and one row in docs/checkpoint-format.md.
#pragma once
#include <array>
#include <string_view>
#include <utility>

#include "model/config.h"
#include "model/tokenizer_assets.h"

namespace temper::ckpt {

// Enums are stored as their names (stable across reordering of the C++ enums).
inline constexpr std::array<std::pair<Activation, std::string_view>, 2> kActivationNames{{
    {Activation::kSilu, "silu"}, {Activation::kGeluTanh, "gelu_tanh"}}};
inline constexpr std::array<std::pair<RopeStyle, std::string_view>, 2> kRopeStyleNames{{
    {RopeStyle::kHalf, "half"}, {RopeStyle::kInterleaved, "interleaved"}}};
inline constexpr std::array<std::pair<FfnKind, std::string_view>, 3> kFfnKindNames{{
    {FfnKind::kDense, "dense"}, {FfnKind::kMoe, "moe"}, {FfnKind::kDenseAndMoe, "dense_and_moe"}}};

inline constexpr const auto& enum_names(Activation) { return kActivationNames; }
inline constexpr const auto& enum_names(RopeStyle) { return kRopeStyleNames; }
inline constexpr const auto& enum_names(FfnKind) { return kFfnKindNames; }

// Scalar attributes of /config. `v(name, &ModelConfig::member)`: the member's C++ type picks
// the HDF5 type (int -> i32, float -> f32, bool -> u8, string -> UTF-8, enum -> its name).
template <typename V>
void visit_model_fields(V&& v) {
  v("arch", &ModelConfig::arch);
  v("hf_architecture", &ModelConfig::hf_architecture);
  v("d_model", &ModelConfig::d_model);
  v("n_layer", &ModelConfig::n_layer);
  v("n_vocab", &ModelConfig::n_vocab);
  v("n_ctx_train", &ModelConfig::n_ctx_train);
  v("norm_eps", &ModelConfig::norm_eps);
  v("norm_weight_offset", &ModelConfig::norm_weight_offset);
  v("post_norms", &ModelConfig::post_norms);
  v("qk_norm", &ModelConfig::qk_norm);
  v("v_norm", &ModelConfig::v_norm);
  v("act", &ModelConfig::act);
  v("embed_scale", &ModelConfig::embed_scale);
  v("attn_scale", &ModelConfig::attn_scale);
  v("final_softcap", &ModelConfig::final_softcap);
  v("tied_embeddings", &ModelConfig::tied_embeddings);
  v("rope_style", &ModelConfig::rope_style);
  v("ple_dim", &ModelConfig::ple_dim);
  v("ple_vocab", &ModelConfig::ple_vocab);
  v("moe_norm_topk", &ModelConfig::moe_norm_topk);
  v("bos_token_id", &ModelConfig::bos_token_id);
  v("eos_token_id", &ModelConfig::eos_token_id);
  v("pad_token_id", &ModelConfig::pad_token_id);
}

// Per-layer 1-D datasets in /config/layers, each of length n_layer. rope_freq_factors is
// ragged and handled apart (values concatenated + per-layer counts), as are the LongRoPE
// fields (rope_freq_factors_long, rope_long_after, rope_attn_factor), which only checkpoints
// using LongRoPE hold (checkpoint.cpp, checkpoint_read.cpp).
template <typename V>
void visit_layer_fields(V&& v) {
  v("n_head", &LayerConfig::n_head);
  v("n_head_kv", &LayerConfig::n_head_kv);
  v("head_dim", &LayerConfig::head_dim);
  v("d_ff", &LayerConfig::d_ff);
  v("window", &LayerConfig::window);
  v("rope_theta", &LayerConfig::rope_theta);
  v("n_rot", &LayerConfig::n_rot);
  v("rope_pos_scale", &LayerConfig::rope_pos_scale);
  v("kv_source_layer", &LayerConfig::kv_source_layer);
  v("k_eq_v", &LayerConfig::k_eq_v);
  v("ffn", &LayerConfig::ffn);
  v("n_expert", &LayerConfig::n_expert);
  v("n_expert_used", &LayerConfig::n_expert_used);
  v("d_ff_expert", &LayerConfig::d_ff_expert);
  v("has_layer_scalar", &LayerConfig::has_layer_scalar);
}

// Scalar attributes of /tokenizer (lists and raw files are datasets, see checkpoint_write.cpp).
template <typename V>
void visit_tokenizer_fields(V&& v) {
  v("kind", &TokenizerAssets::kind);
  v("gguf_model", &TokenizerAssets::gguf_model);
  v("gguf_pre", &TokenizerAssets::gguf_pre);
  v("bos_id", &TokenizerAssets::bos_id);
  v("eos_id", &TokenizerAssets::eos_id);
  v("unk_id", &TokenizerAssets::unk_id);
  v("pad_id", &TokenizerAssets::pad_id);
  v("eot_id", &TokenizerAssets::eot_id);
  v("eom_id", &TokenizerAssets::eom_id);
  v("add_bos", &TokenizerAssets::add_bos);
  v("add_eos", &TokenizerAssets::add_eos);
  v("add_space_prefix", &TokenizerAssets::add_space_prefix);
}

// Raw source files of the tokenizer, stored as uint8 datasets when non-empty.
template <typename V>
void visit_tokenizer_files(V&& v) {
  v("tokenizer_json", &TokenizerAssets::tokenizer_json);
  v("tokenizer_model", &TokenizerAssets::tokenizer_model);
  v("tokenizer_config_json", &TokenizerAssets::tokenizer_config_json);
  v("special_tokens_map_json", &TokenizerAssets::special_tokens_map_json);
}

}  // namespace temper::ckpt
