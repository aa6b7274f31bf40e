// Architecture registry: every registered arch parses a tiny config and resolves its tensor
// table; per-arch facts from docs/architectures.md (Gemma 4 layer geometry of the released
// configs, Llama 3 RoPE factors, Gemma 3 patterns); config errors; and the tiny checkpoints of
// scripts/tiny_models.py hold exactly the tensors the registry expects.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <numbers>
#include <set>

#include "core/error.h"
#include "core/json.h"
#include "model/arch.h"
#include "util/test_util.h"

namespace temper {
namespace {

// A small config per registered arch id, exercising its main features.
Json tiny_config(std::string_view id) {
  if (id == "llama")
    return Json::parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "vocab_size": 512, "rope_theta": 500000.0,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  if (id == "gemma3")
    return Json::parse(R"({"architectures": ["Gemma3ForConditionalGeneration"],
      "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
      "query_pre_attn_scalar": 32, "vocab_size": 512, "sliding_window": 16,
      "rope_scaling": {"rope_type": "linear", "factor": 8.0}}})");
  if (id == "gemma4")
    return Json::parse(R"({"architectures": ["Gemma4ForConditionalGeneration"],
      "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6,
      "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
      "global_head_dim": 64, "vocab_size": 512, "sliding_window": 16,
      "num_kv_shared_layers": 2, "use_double_wide_mlp": true,
      "hidden_size_per_layer_input": 8, "vocab_size_per_layer_input": 512,
      "enable_moe_block": true, "num_experts": 4, "top_k_experts": 2,
      "moe_intermediate_size": 16, "attention_k_eq_v": true, "num_global_key_value_heads": 1,
      "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention",
                      "full_attention", "sliding_attention", "full_attention"]}})");
  if (id == "qwen3")
    return Json::parse(R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512,
      "tie_word_embeddings": true})");
  if (id == "qwen3moe")
    return Json::parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
      "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512, "num_experts": 4,
      "num_experts_per_tok": 2, "moe_intermediate_size": 16, "norm_topk_prob": true,
      "mlp_only_layers": [1]})");
  return Json();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

ModelConfig parse(const Json& j) {
  return find_arch_by_hf_name(j.at("architectures")[0].get<std::string>()).parse_hf_config(j);
}

// The hand-written config above, else the arch's first model in scripts/tiny_models.py.
Json tiny_config_or_generated(const ArchSpec& arch, const test::TempDir& tmp) {
  if (Json j = tiny_config(arch.id); j.is_object()) return j;
  for (const auto& [name, hf_arch] : test::tiny_models()) {
    if (find_arch_by_hf_name(hf_arch).id != arch.id) continue;
    const test::RunResult r = test::run_shell(cat(TEMPER_PYTHON, " ", test::source_dir(), "/scripts/tiny_models.py ",
                                                  tmp.path(), " --only ", name));
    if (r.exit_code != 0) return Json();
    return Json::parse(test::read_file(tmp / name + "/config.json"));
  }
  return Json();
}

TEST(ArchRegistry, EveryArchResolvesATinyConfig) {
  test::TempDir tmp;
  for (const ArchSpec* arch : all_archs()) {
    SCOPED_TRACE(std::string(arch->id));
    const Json j = tiny_config_or_generated(*arch, tmp);
    ASSERT_TRUE(j.is_object()) << "add a tiny model for this arch to scripts/tiny_models.py";
    EXPECT_EQ(find_arch_by_id(arch->id), arch);
    for (std::string_view alias : arch->hf_architectures)
      EXPECT_EQ(&find_arch_by_hf_name(alias), arch);
    const ModelConfig cfg = arch->parse_hf_config(j);
    EXPECT_EQ(cfg.arch, arch->id);
    ASSERT_EQ(static_cast<int>(cfg.layers.size()), cfg.n_layer);

    for (const TensorSpec& spec : arch->tensors) {
      const bool per_layer = spec.flags & kPerLayer, per_expert = spec.flags & kPerExpert;
      EXPECT_EQ(spec.hf_name.find("{L}") != std::string_view::npos, per_layer) << spec.hf_name;
      EXPECT_EQ(spec.gguf_name.find("{L}") != std::string_view::npos, per_layer) << spec.hf_name;
      EXPECT_EQ(spec.hf_name.find("{E}") != std::string_view::npos, per_expert) << spec.hf_name;
      EXPECT_EQ(spec.gguf_name.find("{E}"), std::string_view::npos) << "experts are stacked";
      EXPECT_TRUE(spec.shape) << spec.hf_name;
    }

    const std::vector<ExpectedTensor> expected = expected_tensors(*arch, cfg);
    std::set<std::string> hf_names;
    std::map<std::string, const TensorSpec*> gguf_owner;
    std::set<const TensorSpec*> specs_used;
    for (const ExpectedTensor& t : expected) {
      EXPECT_TRUE(hf_names.insert(t.hf_name).second) << "duplicate " << t.hf_name;
      // Per-expert tensors share their stacked GGUF name; otherwise one name per tensor.
      auto [it, fresh] = gguf_owner.emplace(t.gguf_name, t.spec);
      EXPECT_TRUE(fresh || (it->second == t.spec && (t.spec->flags & kPerExpert)))
          << "duplicate gguf name " << t.gguf_name;
      EXPECT_EQ(t.hf_name.find('{'), std::string::npos) << t.hf_name;
      EXPECT_FALSE(t.shape.empty());
      for (int64_t d : t.shape) EXPECT_GT(d, 0) << t.hf_name;
      EXPECT_EQ(arch->canonical_name(t.hf_name), t.hf_name);
      EXPECT_FALSE(arch->ignorable(cfg, t.hf_name)) << t.hf_name;
      specs_used.insert(t.spec);
    }
    // The tiny configs switch on every feature, so every row of the table is used.
    EXPECT_EQ(specs_used.size(), arch->tensors.size());
    // Plausible shapes: the embedding is [vocab, hidden]; every layer has a q projection of
    // [n_head * head_dim, hidden], or q, k and v fused (kAttnQkv) into
    // [(n_head + 2 * n_head_kv) * head_dim, hidden].
    EXPECT_EQ(expected.front().spec->role, TensorRole::kTokenEmbd);
    EXPECT_EQ(expected.front().shape, (std::vector<int64_t>{cfg.n_vocab, cfg.d_model}));
    int n_q = 0;
    for (const ExpectedTensor& t : expected) {
      const bool fused = t.spec->role == TensorRole::kAttnQkv;
      if (t.spec->role != TensorRole::kAttnQ && !fused) continue;
      const LayerConfig& l = cfg.layers[t.layer];
      const int64_t rows = int64_t(l.n_head + (fused ? 2 * l.n_head_kv : 0)) * l.head_dim;
      EXPECT_EQ(t.shape, (std::vector<int64_t>{rows, cfg.d_model}));
      ++n_q;
    }
    EXPECT_EQ(n_q, cfg.n_layer);
  }
}

TEST(ArchRegistry, AliasesAndUnknownArchitecture) {
  const std::map<std::string, std::string> aliases = {
      {"Gemma4ForConditionalGeneration", "gemma4"}, {"Gemma4ForCausalLM", "gemma4"},
      {"Gemma4TextForCausalLM", "gemma4"}, {"Gemma3ForCausalLM", "gemma3"},
      {"Gemma3ForConditionalGeneration", "gemma3"}, {"LlamaForCausalLM", "llama"},
      {"Qwen3ForCausalLM", "qwen3"}, {"Qwen3MoeForCausalLM", "qwen3moe"}};
  for (const auto& [hf, id] : aliases) EXPECT_EQ(find_arch_by_hf_name(hf).id, id) << hf;
  EXPECT_EQ(find_arch_by_id("falcon"), nullptr);

  const std::string msg = error_of([] { find_arch_by_hf_name("FalconForCausalLM"); });
  EXPECT_NE(msg.find("unsupported architecture 'FalconForCausalLM'; temper supports: "),
            std::string::npos) << msg;
  for (const auto& [hf, id] : aliases) EXPECT_NE(msg.find(hf), std::string::npos) << msg;
}

TEST(ArchRegistry, ExpandName) {
  EXPECT_EQ(expand_name("model.layers.{L}.mlp.experts.{E}.up_proj.weight", 12, 3),
            "model.layers.12.mlp.experts.3.up_proj.weight");
  EXPECT_EQ(expand_name("token_embd.weight", -1), "token_embd.weight");
  EXPECT_THROW(expand_name("blk.{L}.attn_q.weight", -1), Error);
}

TEST(ArchConfig, ErrorsNameTheKeyAndType) {
  Json j = tiny_config("llama");
  j["num_attention_heads"] = "4";
  EXPECT_EQ(error_of([&] { parse(j); }),
            "config.json: key 'num_attention_heads' must be an integer, got string");
  j = tiny_config("llama");
  j.erase("hidden_size");
  EXPECT_EQ(error_of([&] { parse(j); }), "config.json: missing required key 'hidden_size'");
  j = tiny_config("llama");
  j["rope_scaling"]["factor"] = "8";
  EXPECT_EQ(error_of([&] { parse(j); }),
            "config.json: key 'rope_scaling.factor' must be a number, got string");
  j = tiny_config("llama");
  j["intermediate_size"] = 1.5;
  EXPECT_EQ(error_of([&] { parse(j); }),
            "config.json: key 'intermediate_size' must be an integer, got number 1.5");
  j = tiny_config("llama");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of([&] { parse(j); }).find("key 'rope_scaling.rope_type' is \"yarn\""),
            std::string::npos);
  j = tiny_config("llama");
  j["tie_word_embeddings"] = 1;
  EXPECT_EQ(error_of([&] { parse(j); }),
            "config.json: key 'tie_word_embeddings' must be a boolean, got integer 1");
  j = tiny_config("llama");
  j["num_key_value_heads"] = 3;  // does not divide 4 heads
  EXPECT_NE(error_of([&] { parse(j); }).find("n_head_kv (3)"), std::string::npos);

  j = tiny_config("gemma4");
  j["text_config"]["layer_types"][2] = "global";
  EXPECT_EQ(error_of([&] { parse(j); }),
            "config.json: key 'layer_types[2]' must be \"sliding_attention\" or "
            "\"full_attention\", got \"global\"");
  j = tiny_config("gemma4");
  j["text_config"]["layer_types"].erase(0);
  EXPECT_NE(error_of([&] { parse(j); }).find("'layer_types' has 5 entries"), std::string::npos);
  j = tiny_config("gemma4");
  j["text_config"]["rope_parameters"] = Json::parse(
      R"({"full_attention": {"rope_theta": "1e6"}, "sliding_attention": {"rope_theta": 1e4}})");
  EXPECT_EQ(error_of([&] { parse(j); }),
            "config.json: key 'rope_parameters.full_attention.rope_theta' must be a number, "
            "got string");
  j = tiny_config("gemma4");
  j["text_config"].erase("num_experts");
  EXPECT_EQ(error_of([&] { parse(j); }), "config.json: missing required key 'num_experts'");
}

// The released Gemma 4 configs (architectures.md §1.1, text_config values).
Json gemma4_real(std::string_view which) {
  Json t = Json::parse(R"({"vocab_size": 262144, "head_dim": 256, "global_head_dim": 512,
    "final_logit_softcapping": 30.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
    "max_position_embeddings": 131072, "hidden_activation": "gelu_pytorch_tanh",
    "rope_parameters": {"full_attention": {"partial_rotary_factor": 0.25,
      "rope_theta": 1000000.0, "rope_type": "proportional"},
      "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}}})");
  const auto set = [&](int H, int L, int I, bool dw, int nh, int nkv, Json gkv, bool keqv,
                       int sw, int shared, Json ple) {
    t.update({{"hidden_size", H}, {"num_hidden_layers", L}, {"intermediate_size", I},
              {"use_double_wide_mlp", dw}, {"num_attention_heads", nh},
              {"num_key_value_heads", nkv}, {"num_global_key_value_heads", gkv},
              {"attention_k_eq_v", keqv}, {"sliding_window", sw},
              {"num_kv_shared_layers", shared}, {"hidden_size_per_layer_input", ple},
              {"vocab_size_per_layer_input", 262144}, {"enable_moe_block", false}});
  };
  if (which == "E2B") {
    set(1536, 35, 6144, true, 8, 1, nullptr, false, 512, 20, 256);
    Json types = Json::array();  // E2B lists its 4:1 pattern explicitly
    for (int i = 0; i < 35; ++i)
      types.push_back(i % 5 == 4 ? "full_attention" : "sliding_attention");
    t["layer_types"] = types;
  } else if (which == "E4B") {
    set(2560, 42, 10240, false, 8, 2, nullptr, false, 512, 18, 256);
  } else if (which == "26B") {
    set(2816, 30, 2112, false, 16, 8, 2, true, 1024, 0, nullptr);
    t.update({{"enable_moe_block", true}, {"num_experts", 128}, {"top_k_experts", 8},
              {"moe_intermediate_size", 704}});
  } else {
    set(5376, 60, 21504, false, 32, 16, 4, true, 1024, 0, nullptr);
  }
  return Json{{"architectures", {"Gemma4ForConditionalGeneration"}}, {"text_config", t}};
}

TEST(ArchGemma4, ReleasedConfigGeometry) {
  struct Expect {
    const char* name;
    int full_every, shared, kv_sliding, kv_full, window, d_ff, ple;
    bool double_wide, k_eq_v;
    int donor_sliding, donor_full;
  };
  const Expect cases[] = {
      {"E2B", 5, 20, 1, 1, 512, 6144, 256, true, false, 13, 14},
      {"E4B", 6, 18, 2, 2, 512, 10240, 256, false, false, 22, 23},
      {"26B", 6, 0, 8, 2, 1024, 2112, 0, false, true, -1, -1},
      {"31B", 6, 0, 16, 4, 1024, 21504, 0, false, true, -1, -1},
  };
  for (const Expect& e : cases) {
    SCOPED_TRACE(e.name);
    const ModelConfig cfg = parse(gemma4_real(e.name));
    EXPECT_EQ(cfg.arch, "gemma4");
    EXPECT_FLOAT_EQ(cfg.attn_scale, 1.0f);
    EXPECT_FLOAT_EQ(cfg.embed_scale, std::sqrt(static_cast<float>(cfg.d_model)));
    EXPECT_FLOAT_EQ(cfg.final_softcap, 30.0f);
    EXPECT_EQ(cfg.norm_weight_offset, 0.0f);
    EXPECT_TRUE(cfg.v_norm && cfg.qk_norm && cfg.post_norms && cfg.tied_embeddings);
    EXPECT_EQ(cfg.ple_dim, e.ple);
    const int first_shared = cfg.n_layer - e.shared;
    for (int i = 0; i < cfg.n_layer; ++i) {
      SCOPED_TRACE(i);
      const LayerConfig& l = cfg.layers[i];
      // E2B: full at 4, 9, ..., 34; the others: full at 5, 11, ... and the last layer.
      const bool full = (i + 1) % e.full_every == 0 || i == cfg.n_layer - 1;
      EXPECT_EQ(l.head_dim, full ? 512 : 256);
      EXPECT_EQ(l.n_rot, l.head_dim);
      EXPECT_EQ(l.n_head_kv, full ? e.kv_full : e.kv_sliding);
      EXPECT_EQ(l.window, full ? 0 : e.window);
      EXPECT_FLOAT_EQ(l.rope_theta, full ? 1e6f : 1e4f);
      if (full) {
        // Proportional RoPE: int(0.25 * 512 // 2) = 64 rotating frequencies of 256.
        ASSERT_EQ(l.rope_freq_factors.size(), 256u);
        for (int j = 0; j < 256; ++j) EXPECT_EQ(l.rope_freq_factors[j], j < 64 ? 1.0f : 1e30f);
      } else {
        EXPECT_TRUE(l.rope_freq_factors.empty());
      }
      const bool shared = i >= first_shared;
      EXPECT_EQ(l.kv_source_layer, shared ? (full ? e.donor_full : e.donor_sliding) : i);
      EXPECT_EQ(l.k_eq_v, e.k_eq_v && full && !shared);
      EXPECT_EQ(l.d_ff, e.double_wide && shared ? 2 * e.d_ff : e.d_ff);
      EXPECT_TRUE(l.has_layer_scalar);
    }
  }
  const ModelConfig moe = parse(gemma4_real("26B"));
  EXPECT_EQ(moe.layers[0].ffn, FfnKind::kDenseAndMoe);
  EXPECT_EQ(moe.layers[0].n_expert, 128);
  EXPECT_EQ(moe.layers[0].n_expert_used, 8);
  EXPECT_EQ(moe.layers[0].d_ff_expert, 704);
}

TEST(ArchGemma4, DefaultLayerTypesForceTheLastLayerFull) {
  Json j = tiny_config("gemma4");
  j["text_config"].erase("layer_types");
  j["text_config"]["num_hidden_layers"] = 8;
  j["text_config"]["num_kv_shared_layers"] = 0;
  const ModelConfig cfg = parse(j);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(cfg.layers[i].window == 0, i == 5 || i == 7) << i;
}

TEST(ArchGemma4, SharedLayersAndTowers) {
  const ArchSpec& arch = *find_arch_by_id("gemma4");
  const ModelConfig cfg = parse(tiny_config("gemma4"));  // layers 4 and 5 share K/V
  EXPECT_EQ(cfg.layers[4].kv_source_layer, 2);
  EXPECT_EQ(cfg.layers[5].kv_source_layer, 3);
  EXPECT_TRUE(arch.ignorable(cfg, "model.layers.4.self_attn.k_proj.weight"));
  EXPECT_TRUE(arch.ignorable(cfg, "model.layers.5.self_attn.v_proj.weight"));
  EXPECT_TRUE(arch.ignorable(cfg, "model.layers.5.self_attn.k_norm.weight"));
  EXPECT_FALSE(arch.ignorable(cfg, "model.layers.3.self_attn.k_proj.weight"));
  EXPECT_FALSE(arch.ignorable(cfg, "model.layers.5.self_attn.q_proj.weight"));
  EXPECT_TRUE(arch.ignorable(cfg, "model.layers.0.self_attn.rotary_emb.inv_freq"));
  for (const ExpectedTensor& t : expected_tensors(arch, cfg)) {
    if (t.layer >= 4) {
      EXPECT_NE(t.spec->role, TensorRole::kAttnK);
      EXPECT_NE(t.spec->role, TensorRole::kAttnKNorm);
    }
    if (t.layer == 3) {
      EXPECT_NE(t.spec->role, TensorRole::kAttnV) << "k_eq_v full layer";
    }
    if (t.spec->role == TensorRole::kFfnGateUpExps) {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{4, 32, 64}));
    }
  }
  EXPECT_EQ(arch.canonical_name("model.language_model.layers.0.layer_scalar"),
            "model.layers.0.layer_scalar");
  EXPECT_EQ(arch.canonical_name("language_model.lm_head.weight"), "lm_head.weight");
  for (const char* tower : {"model.vision_tower.encoder.x.weight", "model.embed_vision.w",
                            "model.audio_tower.a", "model.embed_audio.b", "vision_tower.v",
                            "multi_modal_projector.mm_input_projection_weight"})
    EXPECT_EQ(arch.canonical_name(tower), std::nullopt) << tower;
}

TEST(ArchGemma3, PatternScalingAndAddOne) {
  const ArchSpec& arch = *find_arch_by_id("gemma3");
  const ModelConfig cfg = parse(tiny_config("gemma3"));
  EXPECT_FLOAT_EQ(cfg.attn_scale, 1 / std::sqrt(32.0f));
  EXPECT_EQ(cfg.norm_weight_offset, 1.0f);
  EXPECT_TRUE(cfg.tied_embeddings);
  for (int i = 0; i < 6; ++i) {
    const LayerConfig& l = cfg.layers[i];
    const bool global = i == 5;
    EXPECT_EQ(l.window, global ? 0 : 16) << i;
    EXPECT_FLOAT_EQ(l.rope_theta, global ? 1e6f : 1e4f) << i;
    EXPECT_FLOAT_EQ(l.rope_pos_scale, global ? 0.125f : 1.0f) << i;
  }
  // llama.cpp adds 1 to every tensor whose name ends in norm.weight, and to nothing else.
  for (const TensorSpec& s : arch.tensors)
    EXPECT_EQ(s.to_gguf == GgufTransform::kAddOne, s.hf_name.ends_with("norm.weight"))
        << s.hf_name;
  // v5 rope_parameters keyed by layer type give the same result.
  Json j = tiny_config("gemma3");
  j["text_config"].erase("rope_scaling");
  j["text_config"]["rope_parameters"] = Json::parse(R"({
      "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
      "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})");
  const ModelConfig v5 = parse(j);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(v5.layers[i].rope_theta, cfg.layers[i].rope_theta);
    EXPECT_EQ(v5.layers[i].rope_pos_scale, cfg.layers[i].rope_pos_scale);
  }
}

TEST(ArchLlama, Llama31RopeFreqFactors) {
  // Llama 3.1 8B: head_dim 128, theta 500000, llama3 scaling factor 8, low 1, high 4, 8192.
  const Json j = Json::parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 1, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "rope_theta": 500000.0,
    "max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
    "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  const ModelConfig cfg = parse(j);
  const LayerConfig& l = cfg.layers[0];
  ASSERT_EQ(l.head_dim, 128);
  ASSERT_EQ(l.rope_freq_factors.size(), 64u);
  // HF _compute_llama3_parameters, in its own form: scale inv_freq, then the factor is
  // inv_freq / scaled inv_freq. Tolerance: float storage (1e-6 relative).
  int n_one = 0, n_eight = 0, n_mid = 0;
  for (int j2 = 0; j2 < 64; ++j2) {
    const double inv = 1 / std::pow(500000.0, 2.0 * j2 / 128);
    const double wavelen = 2 * std::numbers::pi / inv;
    double scaled = inv;
    if (wavelen > 8192.0 / 1.0) {
      scaled = inv / 8;
      ++n_eight;
    } else if (wavelen >= 8192.0 / 4.0) {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      scaled = (1 - smooth) * inv / 8 + smooth * inv;
      ++n_mid;
    } else {
      ++n_one;
    }
    EXPECT_NEAR(l.rope_freq_factors[j2], inv / scaled, 1e-6 * inv / scaled) << j2;
  }
  EXPECT_GT(n_one, 0);  // all three regimes occur
  EXPECT_GT(n_eight, 0);
  EXPECT_GT(n_mid, 0);
  // llama.cpp's interleaved RoPE needs q/k permuted on export.
  const ArchSpec& arch = *find_arch_by_id("llama");
  for (const TensorSpec& s : arch.tensors) {
    const GgufTransform want = s.role == TensorRole::kAttnQ   ? GgufTransform::kPermuteRopeQ
                               : s.role == TensorRole::kAttnK ? GgufTransform::kPermuteRopeK
                                                              : GgufTransform::kNone;
    EXPECT_EQ(s.to_gguf, want) << s.hf_name;
  }
  for (std::string_view id : {"qwen3", "qwen3moe", "gemma4"})
    for (const TensorSpec& s : find_arch_by_id(id)->tensors)
      EXPECT_EQ(s.to_gguf, GgufTransform::kNone) << id << " " << s.hf_name;
}

TEST(ArchQwen3Moe, DenseLayersAndExperts) {
  const ArchSpec& arch = *find_arch_by_id("qwen3moe");
  const ModelConfig cfg = parse(tiny_config("qwen3moe"));
  EXPECT_EQ(cfg.layers[0].ffn, FfnKind::kMoe);
  EXPECT_EQ(cfg.layers[1].ffn, FfnKind::kDense);  // mlp_only_layers: [1]
  EXPECT_EQ(cfg.layers[1].d_ff, 128);
  EXPECT_TRUE(cfg.moe_norm_topk);
  std::map<int, int> experts_per_layer;
  for (const ExpectedTensor& t : expected_tensors(arch, cfg)) {
    if (t.spec->role == TensorRole::kFfnUpExps) {
      ++experts_per_layer[t.layer];
      EXPECT_EQ(t.gguf_name, cat("blk.", t.layer, ".ffn_up_exps.weight"));
      EXPECT_EQ(t.shape, (std::vector<int64_t>{16, 64}));
    }
    if (t.spec->role == TensorRole::kFfnUp) {
      EXPECT_EQ(t.layer, 1);
    }
  }
  EXPECT_EQ(experts_per_layer, (std::map<int, int>{{0, 4}, {2, 4}}));
}

// --- tiny checkpoints ----------------------------------------------------------------------

struct HeaderTensor {
  std::string dtype;
  std::vector<int64_t> shape;
};

// name -> (dtype, shape) from a safetensors header (8-byte length + JSON).
std::map<std::string, HeaderTensor> read_header(const std::string& path) {
  const std::string bytes = test::read_file(path);
  EXPECT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  const Json h = Json::parse(bytes.substr(8, n));
  std::map<std::string, HeaderTensor> out;
  for (const auto& [name, v] : h.items())
    if (name != "__metadata__")
      out[name] = {v.at("dtype").get<std::string>(), v.at("shape").get<std::vector<int64_t>>()};
  return out;
}

std::map<std::string, HeaderTensor> read_checkpoint(const std::string& dir) {
  std::ifstream index(dir + "/model.safetensors.index.json");
  if (!index) return read_header(dir + "/model.safetensors");
  const Json j = Json::parse(index);
  std::set<std::string> shards;
  for (const auto& [name, file] : j.at("weight_map").items()) shards.insert(file);
  EXPECT_EQ(shards.size(), 2u);
  std::map<std::string, HeaderTensor> out;
  for (const std::string& s : shards) {
    for (auto& [name, t] : read_header(dir + "/" + s)) {
      EXPECT_EQ(j["weight_map"].value(name, ""), s) << name;
      out[name] = t;
    }
  }
  EXPECT_EQ(out.size(), j.at("weight_map").size());
  return out;
}

struct Classified {
  int skipped = 0, ignored = 0;
};

// Checks that the checkpoint in `dir` holds exactly the tensors its config implies.
Classified check_checkpoint(const std::string& dir, const std::string& want_dtype) {
  const Json config = Json::parse(test::read_file(dir + "/config.json"));
  const ArchSpec& arch = find_arch_by_hf_name(config.at("architectures")[0].get<std::string>());
  const ModelConfig cfg = arch.parse_hf_config(config);
  std::map<std::string, const ExpectedTensor*> expected;
  const std::vector<ExpectedTensor> list = expected_tensors(arch, cfg);
  for (const ExpectedTensor& t : list) expected[t.hf_name] = &t;

  Classified c;
  std::set<std::string> seen;
  for (const auto& [name, t] : read_checkpoint(dir)) {
    EXPECT_EQ(t.dtype, want_dtype) << name;
    const std::optional<std::string> canon = arch.canonical_name(name);
    if (!canon) {
      ++c.skipped;
      continue;
    }
    auto it = expected.find(*canon);
    if (it == expected.end()) {
      EXPECT_TRUE(arch.ignorable(cfg, *canon)) << dir << ": unexpected tensor " << name;
      ++c.ignored;
      continue;
    }
    EXPECT_EQ(t.shape, it->second->shape) << name;
    seen.insert(*canon);
  }
  for (const ExpectedTensor& t : list)
    if (t.required) {
      EXPECT_TRUE(seen.count(t.hf_name)) << dir << ": missing " << t.hf_name;
    }
  return c;
}

TEST(ArchTinyModels, CheckpointsHoldExactlyTheExpectedTensors) {
  test::TempDir tmp;
  const test::RunResult r = test::run_shell(cat(TEMPER_PYTHON, " ", test::source_dir(),
                                                "/scripts/tiny_models.py ", tmp.path(),
                                                " --sharded gemma4-e2b"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> models;  // every tiny model -> its arch id
  for (const auto& [name, hf_arch] : test::tiny_models())
    models[name] = std::string(find_arch_by_hf_name(hf_arch).id);
  std::set<std::string> archs_covered;
  for (const auto& [name, id] : models) {
    SCOPED_TRACE(name);
    const std::string dir = tmp / name;
    for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                          "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
      EXPECT_TRUE(std::ifstream(dir + "/" + f).good()) << f;
    const Json config = Json::parse(test::read_file(dir + "/config.json"));
    const ArchSpec& arch = find_arch_by_hf_name(config["architectures"][0].get<std::string>());
    EXPECT_EQ(arch.id, id);
    archs_covered.insert(id);
    EXPECT_EQ(arch.parse_hf_config(config).n_vocab, 512);  // the stories260K tokenizer
    const Classified c = check_checkpoint(dir, "BF16");
    EXPECT_EQ(c.skipped, name == "gemma3" || name == "gemma4-31b" || name == "gemma4-26b-a4b" ? 2
                         : name == "gemma4-e2b"                                             ? 4
                                                                                            : 0);
    EXPECT_EQ(c.ignored, name == "gemma4-e2b" ? 6 : 0);  // k/v/k_norm of the 2 shared layers
  }
  for (const ArchSpec* a : all_archs()) EXPECT_TRUE(archs_covered.count(std::string(a->id)));
  EXPECT_TRUE(std::ifstream(tmp / "gemma4-e2b/model.safetensors.index.json").good());

  // --dtype f32 writes F32.
  test::TempDir tmp32;
  ASSERT_EQ(test::run_shell(cat(TEMPER_PYTHON, " ", test::source_dir(), "/scripts/tiny_models.py ",
                                tmp32.path(), " --dtype f32 --only qwen3"))
                .exit_code,
            0);
  check_checkpoint(tmp32 / "qwen3", "F32");
}

TEST(ArchTinyModels, Stories260KFixtureMatchesLlama) {
  // A real converted checkpoint (tied, GQA, head_dim 8) from the shared fixtures.
  const Classified c = check_checkpoint(test::fixture("model/stories260K-hf-f32"), "F32");
  EXPECT_EQ(c.skipped + c.ignored, 0);
}

}  // namespace
}  // namespace temper
