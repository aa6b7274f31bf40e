// gguf_model_metadata against llama.cpp's own converter (convert_hf_to_gguf.py of the release
// temper is tested against): same keys, types, values and order for the stories260K fixtures
// and the tiny models of scripts/tiny_models.py; plus Gemma 4 per-layer arrays checked
// against the config table of docs/architectures.md §1.1/§1.5.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "core/file.h"
#include "core/json.h"
#include "formats/gguf.h"
#include "model/model_desc.h"
#include "quantize/gguf_metadata.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::TempDir;

std::string ref_dir() {
  const char* env = std::getenv("TEMPER_LLAMA_REF_DIR");
  return cat(env ? std::string(env) : test::source_dir() + "/.llama-ref", "/llama.cpp");
}

bool have_reference() { return fs::exists(ref_dir() + "/convert_hf_to_gguf.py"); }

// Runs the converter with the set_vocab of Gemma 4 and Qwen3-MoE disabled: both need
// transformers.AutoTokenizer (LlamaHfVocab / get_vocab_base), which the test machine lacks, so
// only their non-tokenizer keys can be compared.
constexpr const char* kNoVocabRunner = R"PY(
import runpy, sys
ref = sys.argv[1]
sys.path.insert(0, ref)
import conversion.gemma, conversion.qwen
for cls in (conversion.gemma.Gemma4Model, conversion.qwen.Qwen3MoeModel):
    cls.set_vocab = lambda self: None
sys.argv = [ref + "/convert_hf_to_gguf.py"] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
)PY";

std::string convert_with_reference(const TempDir& tmp, const std::string& hf_dir, bool skip_vocab) {
  const std::string out = tmp / (fs::path(hf_dir).filename().string() + ".ref.gguf");
  std::string cmd;
  if (!skip_vocab) {
    cmd = cat("bash '", test::source_dir(), "/tests/llama_ref/convert_reference.sh' '", hf_dir, "' '", out, "' f32");
  } else {
    const std::string runner = tmp / "no_vocab_runner.py";
    if (!fs::exists(runner)) test::write_file(runner, kNoVocabRunner);
    cmd = cat("PYTHONPATH='", test::source_dir(), "/tests/llama_ref/pyshim' ", TEMPER_PYTHON, " '", runner, "' '", ref_dir(),
              "' '", hf_dir, "' --outfile '", out, "' --outtype f32");
  }
  const auto r = test::run_shell(cmd + " 2>&1");
  if (r.exit_code != 0) ADD_FAILURE() << "reference converter failed for " << hf_dir << ":\n" << r.out << r.err;
  return out;
}

std::string write_ours(const TempDir& tmp, const std::string& hf_dir) {
  const std::string out = tmp / (fs::path(hf_dir).filename().string() + ".temper.gguf");
  const ModelDescription desc = load_hf_description(hf_dir);
  GgufWriter w(out, true);
  for (auto& [k, v] : gguf_model_metadata(desc, FileType::kF32)) w.add(k, v);
  w.write_header();
  w.finish();
  return out;
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type_str() != b.type_str() || a.count() != b.count()) return false;
  if (a.type() == GgufType::kString) return a.as_string() == b.as_string();
  if (a.is_array() && a.elem_type() == GgufType::kString) return a.as_string_array() == b.as_string_array();
  return std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin(), b.bytes().end());
}

// Keys (in file order) minus the ignored ones.
std::vector<std::string> kept_keys(const GgufFile& f, const std::set<std::string>& ignore, std::string_view ignore_prefix) {
  std::vector<std::string> out;
  for (const GgufKV& kv : f.kvs())
    if (!ignore.count(kv.key) && (ignore_prefix.empty() || !kv.key.starts_with(ignore_prefix))) out.push_back(kv.key);
  return out;
}

// Every KV of the reference and of ours: identical keys, types, values and order.
void expect_same_kvs(const std::string& ref_path, const std::string& our_path, const std::set<std::string>& ignore,
                     std::string_view ignore_prefix = {}) {
  const GgufFile ref(ref_path), ours(our_path);
  const auto rk = kept_keys(ref, ignore, ignore_prefix), ok = kept_keys(ours, ignore, ignore_prefix);
  std::string diffs;
  for (const auto& k : rk)
    if (!ours.has(k)) diffs += cat("  only in llama.cpp: ", k, " = ", ref.get(k).to_display(), "\n");
  for (const auto& k : ok)
    if (!ref.has(k)) diffs += cat("  only in temper:    ", k, " = ", ours.get(k).to_display(), "\n");
  for (const auto& k : rk)
    if (ours.has(k) && !same_value(ref.get(k), ours.get(k)))
      diffs += cat("  ", k, ": llama.cpp ", ref.get(k).type_str(), " ", ref.get(k).to_display(), ", temper ",
                   ours.get(k).type_str(), " ", ours.get(k).to_display(), "\n");
  EXPECT_EQ(diffs, "") << our_path << " vs " << ref_path << ":\n" << diffs;
  if (diffs.empty()) {
    EXPECT_EQ(rk, ok) << "same KVs but in a different order";
  }
}

// Folder copies with one JSON file changed; the other files are symlinks.
std::string variant(const TempDir& tmp, const std::string& src, const std::string& name,
                    const std::function<void(const std::string& file, Json& j)>& edit, std::set<std::string> edited) {
  const std::string dst = tmp / ("variants/" + name);
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string file = e.path().filename().string();
    if (edited.count(file)) {
      Json j = parse_json(read_text_file(e.path().string()), e.path().string());
      edit(file, j);
      test::write_file(dst + "/" + file, j.dump(2));
    } else {
      fs::create_symlink(e.path(), dst + "/" + file);
    }
  }
  return dst;
}

// The tiny Gemma 4 configs omit moe_intermediate_size (and 26B-A4B layer_types), which this
// converter release requires (real configs written by transformers have both; null for dense).
std::string with_moe_key(const TempDir& tmp, const std::string& src) {
  const ModelDescription desc = load_hf_description(src);
  return variant(tmp, src, fs::path(src).filename().string(), [&](const std::string&, Json& j) {
    Json& tc = j["text_config"];
    if (!tc.contains("moe_intermediate_size") && !tc.contains("expert_intermediate_size")) tc["moe_intermediate_size"] = nullptr;
    if (!tc.contains("layer_types")) {  // the converter reads it; transformers would derive it
      tc["layer_types"] = Json::array();
      for (const LayerConfig& l : desc.config.layers) tc["layer_types"].push_back(l.window > 0 ? "sliding_attention" : "full_attention");
    }
  }, {"config.json"});
}

// general.* keys that only describe the file are compared too; none needs ignoring today.
const std::set<std::string> kIgnoredDescriptive = {};

TEST(GgufMetadataReference, StoriesFixtures) {
  if (!have_reference()) GTEST_SKIP() << "llama.cpp reference missing: run scripts/setup-llama-ref.sh";
  TempDir tmp;
  std::vector<std::string> dirs;
  for (const char* name : {"stories260K-hf-f32", "stories260K-hf-bf16", "stories260K-hf-f16", "stories260K-hf-f32-sharded-untied"})
    dirs.push_back(test::fixture(std::string("model/") + name));
  // A chat-template list, sampling defaults and add_eos in the side files.
  dirs.push_back(variant(tmp, dirs[0], "stories260K-chat-v2", [](const std::string& file, Json& j) {
    if (file == "tokenizer_config.json") {
      j["chat_template"] = Json::array({{{"name", "default"}, {"template", "{{ messages[0]['content'] }}"}},
                                        {{"name", "tool use"}, {"template", "{{ tools }}"}}});
      j["add_eos_token"] = true;
    } else {
      j["top_k"] = 40;
      j["top_p"] = 0.9;
      j["temperature"] = 0.7;
      j["repetition_penalty"] = 1.1;
    }
  }, {"tokenizer_config.json", "generation_config.json"}));
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir);
    expect_same_kvs(convert_with_reference(tmp, dir, false), write_ours(tmp, dir), kIgnoredDescriptive);
  }
}

TEST(GgufMetadataReference, TinyModels) {
  if (!have_reference()) GTEST_SKIP() << "llama.cpp reference missing: run scripts/setup-llama-ref.sh";
  TempDir tmp;
  const auto gen = test::run_shell(cat(TEMPER_PYTHON, " '", test::source_dir(), "/scripts/tiny_models.py' '", tmp / "tiny", "' 2>&1"));
  ASSERT_EQ(gen.exit_code, 0) << gen.out;
  // SentencePiece vocab (tokenizer.model) for llama, gemma3, qwen3 and Phi-3 (its own padded
  // table; rope.scaling.attn_factor written before general.*): all keys compared.
  for (const char* name : {"llama", "llama-tied", "gemma3", "qwen3", "phi4-mini", "phi4-mini-short"}) {
    SCOPED_TRACE(name);
    const std::string dir = tmp / (std::string("tiny/") + name);
    expect_same_kvs(convert_with_reference(tmp, dir, false), write_ours(tmp, dir), kIgnoredDescriptive);
  }
  // Vocabularies the reference cannot build here: everything but tokenizer.*.
  for (const char* name : {"gemma4-e2b", "gemma4-26b-a4b", "gemma4-31b", "qwen3moe"}) {
    SCOPED_TRACE(name);
    std::string dir = tmp / (std::string("tiny/") + name);
    if (std::string_view(name).starts_with("gemma4")) dir = with_moe_key(tmp, dir);
    // general.size_label: the converter counts the parameters of the tensors it writes; temper
    // estimates them from the config, which for Gemma 4 differs slightly (e.g. 582K vs 594K).
    std::set<std::string> ignore = kIgnoredDescriptive;
    if (std::string_view(name).starts_with("gemma4")) ignore.insert("general.size_label");
    expect_same_kvs(convert_with_reference(tmp, dir, true), write_ours(tmp, dir), ignore, "tokenizer.");
  }
}

// An added token HF marks special is CONTROL in the GGUF on every vocabulary path (never split
// into text pieces by llama.cpp). tokenizer.model only, special in added_tokens_decoder: what
// the converter writes (compared key by key, token types included). tokenizer.model +
// tokenizer.json, special only in tokenizer.json: the converter's SentencePiece path misses
// it; temper follows HF, also for tokens named only in additional_special_tokens. (tokenizer.json
// only: runtime_gguf/gguf_chat_tokenize_test.)
TEST(GgufMetadataReference, SpecialAddedTokensAreControl) {
  if (!have_reference()) GTEST_SKIP() << "llama.cpp reference missing: run scripts/setup-llama-ref.sh";
  TempDir tmp;
  const std::string stories = test::fixture("model/stories260K-hf-f32");
  auto entry = [](const std::string& content, bool special) {
    return Json{{"content", content}, {"lstrip", false}, {"normalized", false}, {"rstrip", false},
                {"single_word", false}, {"special", special}};
  };
  const int32_t kControl = 3, kUserDefined = 4;
  const std::string sp_only = variant(tmp, stories, "sp-only", [&](const std::string&, Json& tc) {
    tc["added_tokens_decoder"]["300"] = entry("\u2581ha", true);
    tc["added_tokens_decoder"]["301"] = entry("\u2581S", false);
  }, {"tokenizer_config.json"});
  fs::remove(sp_only + "/tokenizer.json");
  const std::string ours = write_ours(tmp, sp_only);
  expect_same_kvs(convert_with_reference(tmp, sp_only, false), ours, kIgnoredDescriptive);
  const auto types = GgufFile(ours).get_array<int32_t>("tokenizer.ggml.token_type");
  EXPECT_EQ(types.at(300), kControl);
  EXPECT_EQ(types.at(301), kUserDefined);

  const std::string both = variant(tmp, stories, "both", [&](const std::string&, Json& tok) {
    Json e = entry("\u2581ha", true);
    e["id"] = 300;
    tok["added_tokens"].push_back(e);
  }, {"tokenizer.json"});
  EXPECT_EQ(GgufFile(write_ours(tmp, both)).get_array<int32_t>("tokenizer.ggml.token_type").at(300), kControl);

  // tokenizer.model only, named special only through additional_special_tokens (older configs
  // without added_tokens_decoder): transformers never splits it either.
  const std::string additional = variant(tmp, stories, "additional", [&](const std::string&, Json& tc) {
    tc.erase("added_tokens_decoder");
    tc["additional_special_tokens"] = Json::array({"\u2581S"});
  }, {"tokenizer_config.json"});
  fs::remove(additional + "/tokenizer.json");
  EXPECT_EQ(GgufFile(write_ours(tmp, additional)).get_array<int32_t>("tokenizer.ggml.token_type").at(301), kControl);
}

// ---- checks that need no reference ----------------------------------------------------

const GgufValue& find_kv(const GgufKvList& kvs, std::string_view key) {
  for (const auto& [k, v] : kvs)
    if (k == key) return v;
  throw Error(cat("no key ", key));
}

bool has_kv(const GgufKvList& kvs, std::string_view key) {
  return std::any_of(kvs.begin(), kvs.end(), [&](const auto& kv) { return kv.first == key; });
}

// A Gemma 4 folder with the real config values of docs/architectures.md §1.1 (E2B or 26B-A4B)
// and the stories260K tokenizer.json.
ModelDescription gemma4_description(const TempDir& tmp, bool e2b) {
  const int n_layer = e2b ? 35 : 30;
  Json types = Json::array();
  for (int i = 0; i < n_layer; ++i) types.push_back((i + 1) % (e2b ? 5 : 6) == 0 ? "full_attention" : "sliding_attention");
  Json text = {{"model_type", "gemma4_text"}, {"hidden_size", e2b ? 1536 : 2816}, {"num_hidden_layers", n_layer},
               {"intermediate_size", e2b ? 6144 : 2112}, {"use_double_wide_mlp", e2b},
               {"num_attention_heads", e2b ? 8 : 16}, {"num_key_value_heads", e2b ? 1 : 8},
               {"num_global_key_value_heads", e2b ? Json() : Json(2)}, {"attention_k_eq_v", !e2b},
               {"head_dim", 256}, {"global_head_dim", 512}, {"sliding_window", e2b ? 512 : 1024},
               {"layer_types", types}, {"num_kv_shared_layers", e2b ? 20 : 0},
               {"hidden_size_per_layer_input", e2b ? Json(256) : Json()}, {"vocab_size", 262144},
               {"vocab_size_per_layer_input", 262144}, {"enable_moe_block", !e2b},
               {"num_experts", e2b ? Json() : Json(128)}, {"top_k_experts", e2b ? Json() : Json(8)},
               {"moe_intermediate_size", e2b ? Json() : Json(704)}, {"final_logit_softcapping", 30.0},
               {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", true}, {"max_position_embeddings", 131072},
               {"rope_parameters", {{"full_attention", {{"partial_rotary_factor", 0.25}, {"rope_theta", 1000000.0},
                                                        {"rope_type", "proportional"}}},
                                    {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}}}};
  const Json config = {{"architectures", {"Gemma4ForConditionalGeneration"}}, {"model_type", "gemma4"}, {"text_config", text}};
  const std::string dir = tmp / (e2b ? "gemma-4-E2B-it" : "gemma-4-26B-A4B-it");
  fs::create_directories(dir);
  test::write_file(dir + "/config.json", config.dump(2));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(test::fixture(std::string("model/stories260K-hf-f32/") + f), dir + "/" + f);
  return load_hf_description(dir);
}

TEST(GgufMetadata, Gemma4E2BPerLayerArrays) {
  TempDir tmp;
  const GgufKvList kvs = gguf_model_metadata(gemma4_description(tmp, true), FileType::kQ4_K_M);
  // Double-wide MLP on the 20 KV-shared layers (15..34): 2 x 6144.
  std::vector<int32_t> ff(35, 6144);
  std::fill(ff.begin() + 15, ff.end(), 12288);
  EXPECT_EQ(find_kv(kvs, "gemma4.feed_forward_length").as_array<int32_t>(), ff);
  std::vector<bool> swa(35, true);
  for (int i = 4; i < 35; i += 5) swa[size_t(i)] = false;
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.sliding_window_pattern").as_array<bool>(), swa);
  // num_global_key_value_heads is null: a scalar KV head count.
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.head_count_kv").as<uint32_t>(), 1u);
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.key_length").as<uint32_t>(), 512u);
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.value_length").as<uint32_t>(), 512u);
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.key_length_swa").as<uint32_t>(), 256u);
  EXPECT_EQ(find_kv(kvs, "gemma4.rope.dimension_count").as<uint32_t>(), 512u);
  EXPECT_EQ(find_kv(kvs, "gemma4.rope.dimension_count_swa").as<uint32_t>(), 256u);
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.shared_kv_layers").as<uint32_t>(), 20u);
  EXPECT_EQ(find_kv(kvs, "gemma4.embedding_length_per_layer_input").as<uint32_t>(), 256u);
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.sliding_window").as<uint32_t>(), 512u);
  EXPECT_EQ(find_kv(kvs, "gemma4.context_length").as<uint32_t>(), 131072u);
  EXPECT_EQ(find_kv(kvs, "gemma4.rope.freq_base").as<float>(), 1e6f);
  EXPECT_EQ(find_kv(kvs, "gemma4.rope.freq_base_swa").as<float>(), 1e4f);
  EXPECT_EQ(find_kv(kvs, "gemma4.final_logit_softcapping").as<float>(), 30.0f);
  EXPECT_FALSE(has_kv(kvs, "gemma4.expert_count"));
  EXPECT_FALSE(has_kv(kvs, "gemma4.expert_feed_forward_length"));
  EXPECT_FALSE(has_kv(kvs, "gemma4.rope.scaling.type"));  // "proportional" writes no scaling keys
  EXPECT_EQ(find_kv(kvs, "general.file_type").as<uint32_t>(), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(find_kv(kvs, "general.quantization_version").as<uint32_t>(), 2u);
  EXPECT_EQ(find_kv(kvs, "tokenizer.ggml.model").as_string(), "gemma4");
  EXPECT_FALSE(has_kv(kvs, "tokenizer.ggml.pre"));
  EXPECT_TRUE(find_kv(kvs, "tokenizer.ggml.add_bos_token").as<bool>());
  EXPECT_FALSE(find_kv(kvs, "tokenizer.ggml.add_space_prefix").as<bool>());
}

TEST(GgufMetadata, Gemma4MoePerLayerKvHeads) {
  TempDir tmp;
  const GgufKvList kvs = gguf_model_metadata(gemma4_description(tmp, false), FileType::kQ8_0);
  std::vector<int32_t> kv_heads(30, 8);
  for (int i = 5; i < 30; i += 6) kv_heads[size_t(i)] = 2;
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.head_count_kv").as_array<int32_t>(), kv_heads);
  EXPECT_EQ(find_kv(kvs, "gemma4.feed_forward_length").as<uint32_t>(), 2112u);  // no double-wide MLP
  EXPECT_EQ(find_kv(kvs, "gemma4.expert_count").as<uint32_t>(), 128u);
  EXPECT_EQ(find_kv(kvs, "gemma4.expert_used_count").as<uint32_t>(), 8u);
  EXPECT_EQ(find_kv(kvs, "gemma4.expert_feed_forward_length").as<uint32_t>(), 704u);
  EXPECT_EQ(find_kv(kvs, "gemma4.attention.shared_kv_layers").as<uint32_t>(), 0u);
  EXPECT_EQ(find_kv(kvs, "gemma4.embedding_length_per_layer_input").as<uint32_t>(), 0u);
  EXPECT_EQ(find_kv(kvs, "general.file_type").as<uint32_t>(), 7u);  // LLAMA_FTYPE_MOSTLY_Q8_0
}

TEST(GgufMetadata, TokenizerKeysAreTheModelsTokenizerKeys) {
  const ModelDescription desc = load_hf_description(test::fixture("model/stories260K-hf-f32"));
  const GgufKvList all = gguf_model_metadata(desc, FileType::kQ4_0);
  GgufKvList expected;
  for (const auto& kv : all)
    if (kv.first.starts_with("tokenizer.")) expected.push_back(kv);
  const GgufKvList tok = gguf_tokenizer_metadata(desc);
  ASSERT_EQ(tok.size(), expected.size());
  for (size_t i = 0; i < tok.size(); ++i) {
    EXPECT_EQ(tok[i].first, expected[i].first);
    EXPECT_TRUE(same_value(tok[i].second, expected[i].second)) << tok[i].first;
  }
  EXPECT_EQ(find_kv(all, "general.file_type").as<uint32_t>(), 2u);  // LLAMA_FTYPE_MOSTLY_Q4_0
  EXPECT_EQ(find_kv(tok, "tokenizer.ggml.tokens").count(), 512u);
}

}  // namespace
}  // namespace temper
