// temper quantize against llama.cpp itself: our F32 GGUF equals what llama.cpp's converter
// writes (keys, types, values, tensor bytes); every file type equals what llama-quantize makes
// from that F32 GGUF (per-tensor types and block bytes); llama.cpp runs our files and
// reproduces the stories260K reference logits and story.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/json.h"
#include "quantize/llama_ref_util.h"
#include "quantize/policy.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using namespace test;

const std::string kIgnore = std::string("--ignore-keys ") + kDescriptiveKeys;

// Shared inputs, made once: stories260K as checkpoint and F32 GGUF, and the tiny models in f32.
struct Inputs {
  TempDir dir;
  std::string stories_h5, stories_f32, tiny;
  Inputs() {
    stories_h5 = dir / "stories.h5";
    stories_f32 = dir / "stories.f32.gguf";
    temper_ok("convert " + fixture("model/stories260K-hf-f32") + " -o " + stories_h5);
    temper_ok("quantize " + stories_h5 + " -t F32 -o " + stories_f32);
    tiny = dir / "tiny";
    auto r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/scripts/tiny_models.py " + tiny + " --dtype f32");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
};
Inputs& inputs() {
  static Inputs in;
  return in;
}

std::vector<int> reference_tokens() {
  std::ifstream f(fixture("model/reference/logits_meta.json"));
  return Json::parse(f)["tokens"].get<std::vector<int>>();
}

TEST(QuantizeReference, StoriesF32EqualsLlamaCppConverter) {
  TempDir d;
  reference_convert(fixture("model/stories260K-hf-f32"), d / "ref.gguf");
  std::string report;
  EXPECT_TRUE(gguf_same(inputs().stories_f32, d / "ref.gguf", kIgnore, &report)) << report;
}

TEST(QuantizeReference, LlamaCppReproducesStoriesReferenceLogits) {
  // The reference is numpy float64. llama.cpp computes in f32 (f32 KV cache); dot products are
  // at most 172 long over values of magnitude <= ~5, so f32 rounding stays far below 1e-4
  // relative to the largest logit (~22). Observed: ~1e-5.
  int vocab = 0;
  const auto tokens = reference_tokens();
  const auto got = reference_logits(inputs().stories_f32, tokens, &vocab);
  ASSERT_EQ(vocab, 512);
  std::ifstream f(fixture("model/reference/logits_f32_64x512.f32"), std::ios::binary);
  std::vector<float> want(64 * 512);
  f.read(reinterpret_cast<char*>(want.data()), std::streamsize(want.size() * 4));
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
  EXPECT_LT(worst, 22.0 * 1e-5 * 4) << "max |llama.cpp - reference| = " << worst;
}

TEST(QuantizeReference, LlamaCppGreedyStoryMatchesReference) {
  std::ifstream f(fixture("model/reference/greedy_once_upon_a_time.json"));
  const Json ref = Json::parse(f);
  const auto want = ref["new_ids"].get<std::vector<int>>();
  const auto got = reference_generate(inputs().stories_f32, ref["prompt_ids_with_bos"].get<std::vector<int>>(), int(want.size()));
  EXPECT_EQ(got, want);
}

// Every file type: temper's GGUF == llama-quantize's GGUF from our F32 file, tensor by tensor.
class FileTypeMatchesLlamaQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(FileTypeMatchesLlamaQuantize, StoriesAndWideLlama) {
  const FileType ft = parse_file_type(GetParam());
  TempDir d;
  const std::string wide_dir = inputs().tiny + "/llama-wide";
  const std::string wide_f32 = d / "wide.f32.gguf";
  temper_ok("quantize " + wide_dir + " -t F32 -o " + wide_f32);
  for (const auto& [src, f32] : {std::pair{inputs().stories_h5, inputs().stories_f32}, std::pair{wide_dir, wide_f32}}) {
    const std::string ours = d / "ours.gguf", theirs = d / "theirs.gguf";
    temper_ok("quantize " + src + " -t " + GetParam() + " -o " + ours + " --force");
    fs::remove(theirs);
    ASSERT_EQ(reference_quantize(f32, theirs, int(ft)), 0);
    std::string report;
    EXPECT_TRUE(gguf_same(ours, theirs, kIgnore, &report)) << src << " " << GetParam() << ":\n" << report;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, FileTypeMatchesLlamaQuantize,
                         ::testing::Values("F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S",
                                           "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL",
                                           "IQ4_XS"));

// An importance matrix changes the search in most block types; the same matrix must give the
// same bytes as llama-quantize with it. Written in llama.cpp's legacy .dat format.
TEST(QuantizeReference, ImatrixMatchesLlamaQuantize) {
  TempDir d;
  const std::string wide_dir = inputs().tiny + "/llama-wide", wide_f32 = d / "wide.f32.gguf";
  temper_ok("quantize " + wide_dir + " -t F32 -o " + wide_f32);
  Json dry = Json::parse(temper_ok("quantize " + wide_dir + " -t Q4_K_M -o " + (d / "x.gguf") + " --dry-run --json"));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.01f, 4.0f);
  std::string dat;
  auto put32 = [&](int32_t v) { dat.append(reinterpret_cast<const char*>(&v), 4); };
  int n = 0;
  std::string body;
  for (const auto& t : dry["tensors"]) {
    const std::string name = t["name"];
    if (name.rfind("blk.", 0) != 0 || t["ne"].size() < 2) continue;
    const int ne0 = t["ne"][0];
    std::string e;
    int32_t len = int32_t(name.size()), ncall = 1, nval = ne0;
    e.append(reinterpret_cast<const char*>(&len), 4).append(name);
    e.append(reinterpret_cast<const char*>(&ncall), 4).append(reinterpret_cast<const char*>(&nval), 4);
    for (int i = 0; i < ne0; ++i) {
      float v = u(rng);
      e.append(reinterpret_cast<const char*>(&v), 4);
    }
    body += e;
    ++n;
  }
  put32(n);
  dat += body;
  write_file(d / "im.dat", dat);
  for (const auto& [type, id] : {std::pair{"Q4_K_M", 15}, std::pair{"IQ4_XS", 30}, std::pair{"Q4_0", 2}, std::pair{"Q2_K", 10}}) {
    const std::string ours = d / "ours.gguf", theirs = d / "theirs.gguf";
    temper_ok("quantize " + wide_dir + " -t " + type + " -o " + ours + " --force --imatrix " + (d / "im.dat"));
    fs::remove(theirs);
    ASSERT_EQ(reference_quantize(wide_f32, theirs, id, "--imatrix " + (d / "im.dat")), 0);
    // llama-quantize records the imatrix as quantize.imatrix.* keys too; their file name differs.
    std::string report;
    EXPECT_TRUE(gguf_same(ours, theirs, kIgnore + ",quantize.imatrix.file --ignore-key-prefix quantize.imatrix", &report))
        << type << ":\n" << report;
    // ... and the imatrix really changed the bytes.
    temper_ok("quantize " + wide_dir + " -t " + type + " -o " + (d / "plain.gguf") + " --force");
    EXPECT_FALSE(gguf_same(ours, d / "plain.gguf", kIgnore + " --ignore-key-prefix quantize.imatrix", nullptr)) << type;
  }
}

// Every architecture: the F32 GGUF equals llama.cpp's converter output, and llama.cpp runs
// temper's F32, Q8_0 and Q4_K_M files.
TEST(QuantizeReference, EveryArchitectureMatchesConverterAndRunsInLlamaCpp) {
  int models = 0;
  for (const auto& entry : fs::directory_iterator(inputs().tiny)) {
    const std::string src = entry.path().string(), name = entry.path().filename().string();
    TempDir d;
    temper_ok("quantize " + src + " -t F32 -o " + (d / "ours.gguf"));
    // The reference converter cannot build the Gemma 4 and Qwen3-MoE vocabularies here (it
    // needs transformers): for those, everything but tokenizer.* is compared.
    const bool no_vocab = name.starts_with("gemma4") || name == "qwen3moe";
    reference_convert(src, d / "ref.gguf", "f32", no_vocab);
    std::string report;
    // The checkpoint may hold k/v of Gemma 4's KV-shared layers, which the model never uses (HF
    // ignores them on load): llama.cpp's converter copies them, temper leaves them out.
    const std::string unused = " --allow-only-in-b 'blk\\.[0-9]+\\.attn_(k|v|k_norm)\\.weight'";
    EXPECT_TRUE(gguf_same(d / "ours.gguf", d / "ref.gguf",
                          kIgnore + (no_vocab ? " --ignore-key-prefix tokenizer." : "") + (name == "gemma4-e2b" ? unused : ""),
                          &report))
        << name << ":\n" << report;
    const std::vector<int> tokens = {1, 403, 407, 261, 378, 383, 286, 261, 376, 268, 414, 422};
    int vocab = 0;
    const auto f32 = reference_logits(d / "ours.gguf", tokens, &vocab);
    ASSERT_EQ(f32.size(), tokens.size() * size_t(vocab)) << name;
    for (const char* type : {"Q8_0", "Q4_K_M"}) {
      temper_ok("quantize " + src + " -t " + type + " -o " + (d / "q.gguf") + " --force");
      const auto q = reference_logits(d / "q.gguf", tokens, &vocab);
      ASSERT_EQ(q.size(), f32.size()) << name << " " << type;
      double diff = 0, mag = 0;
      for (size_t i = 0; i < q.size(); ++i) {
        ASSERT_TRUE(std::isfinite(q[i])) << name << " " << type;
        diff = std::max(diff, double(std::fabs(q[i] - f32[i])));
        mag = std::max(mag, double(std::fabs(f32[i])));
      }
      EXPECT_GT(diff, 0) << name << " " << type << ": quantized logits identical to f32 (nothing quantized?)";
      EXPECT_LT(diff, 0.5 * mag + 1e-3) << name << " " << type;
    }
    ++models;
  }
  EXPECT_GE(models, 9);
}

}  // namespace
}  // namespace temper
