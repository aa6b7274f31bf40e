// The llama.cpp-compatibility check before writing a GGUF: configs the pinned llama.cpp
// release would misread or abort on are refused with a message naming the config key; --force
// writes them with the reason in temper.llama_cpp_warning; the tiny model of every
// architecture passes. For the Gemma 4 KV-sharing case llama.cpp itself (node-llama-cpp) is
// run on the forced file to show the rule is real: it aborts in llama-kv-cache.cpp.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/file.h"
#include "core/json.h"
#include "formats/gguf.h"
#include "model/model_desc.h"
#include "quantize/gguf_metadata.h"
#include "quantize/llama_compat.h"
#include "quantize/llama_ref_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using namespace test;

struct Tiny {
  TempDir dir;
  Tiny() {
    auto r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/scripts/tiny_models.py " + (dir / "m") +
                       " --dtype f32");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/scripts/tiny_models.py " + (dir / "m") +
                  " --dtype f32 --only gemma4-e2b-sliding-last");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  std::string operator/(const std::string& name) const { return dir / ("m/" + name); }
};
const Tiny& tiny() {
  static Tiny t;
  return t;
}

// A copy of tiny model `name` (weights symlinked) with config.json (text_config for
// multimodal wrappers) edited.
std::string variant(const TempDir& d, const std::string& name, const std::function<void(Json&)>& edit) {
  const std::string src = tiny() / name, dst = d / (name + "-variant");
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dst + "/" + e.path().filename().string());
  Json cfg = Json::parse(read_file(src + "/config.json"));
  edit(cfg.contains("text_config") ? cfg["text_config"] : cfg);
  write_file(dst + "/config.json", cfg.dump(2));
  return dst;
}

// Refused without --force (message names the key, no output), written with it (warning on
// stderr and in the GGUF metadata).
void expect_refused_then_forced(const std::string& folder, const std::string& key, const std::string& out) {
  auto r = run_temper("quantize " + folder + " -t F32 -o " + out);
  EXPECT_NE(r.exit_code, 0) << "llama.cpp-incompatible config written without --force: " << folder;
  EXPECT_NE(r.err.find("'" + key + "'"), std::string::npos) << "error does not name '" << key << "':\n" << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "refused, yet " << out << " exists";
  r = run_temper("quantize " + folder + " -t F32 -o " + out + " --force");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(key), std::string::npos) << "no warning on stderr:\n" << r.err;
  const GgufFile f(out);
  ASSERT_TRUE(f.has(kLlamaCppWarningKey)) << out;
  EXPECT_NE(f.get_string(kLlamaCppWarningKey).find("'" + key + "'"), std::string::npos) << f.get_string(kLlamaCppWarningKey);
}

TEST(LlamaCompat, EveryTinyModelPasses) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(tiny().dir / "m")) {
    if (e.path().filename() == "gemma4-e2b-sliding-last") continue;
    const ModelDescription desc = load_hf_description(e.path().string());
    EXPECT_EQ(llama_cpp_issues(desc, gguf_model_metadata(desc, FileType::kF32)), std::vector<std::string>{})
        << e.path();
    ++n;
  }
  EXPECT_GE(n, 9);
}

// The forced file is, key for key and byte for byte (gguf-py's reader), the GGUF of the
// unchanged tiny Gemma 3 (but for the name taken from the folder): llama.cpp cannot tell the
// two models apart.
void expect_same_as_tiny_gemma3(const TempDir& d, const std::string& forced) {
  temper_ok("quantize " + (tiny() / "gemma3") + " -t F32 -o " + (d / "plain.gguf"));
  std::string report;
  EXPECT_TRUE(gguf_same(forced, d / "plain.gguf", cat("--ignore-keys ", kLlamaCppWarningKey, ",", kDescriptiveKeys), &report))
      << report;
}

TEST(LlamaCompat, Gemma3SlidingWindowPatternOtherThan6) {
  TempDir d;
  // 6 layers, period 4: HF makes layer 3 global and 5 sliding; llama.cpp's fixed period 6 the opposite.
  expect_refused_then_forced(variant(d, "gemma3", [](Json& c) { c["sliding_window_pattern"] = 4; }),
                             "sliding_window_pattern", d / "out.gguf");
  expect_same_as_tiny_gemma3(d, d / "out.gguf");
}

TEST(LlamaCompat, Gemma3QueryPreAttnScalarOtherThanHeadDim) {
  TempDir d;
  expect_refused_then_forced(variant(d, "gemma3", [](Json& c) { c["query_pre_attn_scalar"] = 64; }),
                             "query_pre_attn_scalar", d / "out.gguf");
  expect_same_as_tiny_gemma3(d, d / "out.gguf");
}

TEST(LlamaCompat, Qwen3MoeWithoutTopKRenormalisation) {
  TempDir d;
  expect_refused_then_forced(variant(d, "qwen3moe", [](Json& c) { c["norm_topk_prob"] = false; }), "norm_topk_prob",
                             d / "out.gguf");
}

// The Gemma 4 rule against llama.cpp itself: the compatible E2B layout loads and runs; the one
// whose last non-shared layer is sliding, written with --force, makes llama.cpp abort.
TEST(LlamaCompat, Gemma4SlidingLastNonSharedLayerAbortsLlamaCpp) {
  TempDir d;
  expect_refused_then_forced(tiny() / "gemma4-e2b-sliding-last", "num_kv_shared_layers", d / "forced.gguf");
  temper_ok("quantize " + (tiny() / "gemma4-e2b") + " -t F32 -o " + (d / "ok.gguf"));
  auto run_llama = [&](const std::string& gguf) {
    const std::string jobs = d / "jobs.json";
    write_file(jobs, Json::array({{{"cmd", "logits"}, {"model", gguf}, {"tokens", {2, 10, 11}}, {"out", gguf + ".f32"}}}).dump());
    return run_shell("TEMPER_LLAMA_REF_DIR=" + llama_ref_dir() + " node " + source_dir() +
                     "/tests/runtime_gguf/llama_batch.mjs " + jobs + " 2>&1");
  };
  const auto ok = run_llama(d / "ok.gguf");
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  const auto bad = run_llama(d / "forced.gguf");
  EXPECT_NE(bad.exit_code, 0) << "llama.cpp loaded the forced file:\n" << bad.out;
  EXPECT_NE(bad.out.find("map_layer_ids"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace temper
