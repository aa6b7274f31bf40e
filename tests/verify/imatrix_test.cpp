// `temper imatrix` against llama.cpp's own llama-imatrix (the pinned release, compiled by
// scripts/setup-llama-ref.sh) on the same F32 GGUF of the sample model and the same text: the
// same entries, identical token counts, sums within a derived tolerance; and the file it writes
// quantizes to the same bytes in llama-quantize and in temper quantize. Bad input: text shorter
// than one chunk, chat data that renders to nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "core/json.h"
#include "formats/gguf.h"
#include "quantize/llama_ref_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using namespace test;

const std::string kSample = source_dir() + "/sample/stories260K";
const std::string kText = fixture("text/tinystories_sample.txt");  // 1,878 tokens with BOS
const std::string kTools = std::string(TEMPER_LLAMA_REF_DIR) + "/tools/bin/";

struct Entry {
  std::vector<float> sums, counts;
};

std::map<std::string, Entry> read_entries(const std::string& path) {
  GgufFile f(path);
  std::map<std::string, Entry> out;
  std::vector<uint8_t> scratch;
  for (const auto& t : f.tensors()) {
    const bool sums = t.name.ends_with(".in_sum2");
    const std::string name = t.name.substr(0, t.name.rfind('.'));
    std::vector<float> v(t.numel());
    std::memcpy(v.data(), f.read(t, scratch).data(), v.size() * 4);
    (sums ? out[name].sums : out[name].counts) = std::move(v);
  }
  return out;
}

class Imatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    RunResult r = run_temper("quantize " + kSample + " -t F32 -o " + f32());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string f32() { return *dir_ / "stories.f32.gguf"; }
  void SetUp() override {
    if (run_shell("test -x " + kTools + "llama-imatrix").exit_code != 0)
      GTEST_SKIP() << kTools << "llama-imatrix missing: run scripts/setup-llama-ref.sh";
  }
  // llama-imatrix with an f32 KV cache and no flash attention (both round to f16 on the CPU
  // otherwise), one thread (the sums do not depend on it), no perplexity.
  static void llama_imatrix(const std::string& out, int ctx, const std::string& extra = "") {
    RunResult r = run_shell(kTools + "llama-imatrix -m " + f32() + " -f " + kText + " -c " + std::to_string(ctx) +
                            " -o " + out + " -fa off -ctk f32 -ctv f32 -t 1 --no-ppl " + extra + " 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  static TempDir* dir_;
};
TempDir* Imatrix::dir_ = nullptr;

// Tolerance of a sum of n squared activations. llama.cpp adds them one by one in f32: at most
// n·u relative error for positive terms (u = 2^-24). Each activation differs between the two
// programs by f32 rounding of their different kernels; on this model their logits agree to 1e-5
// relative (verify_llama_test), so a square differs by at most ~2e-5 relative. Bound: n·u + 2e-5.
void expect_same(const std::string& ours, const std::string& theirs, int64_t n_tokens) {
  const auto a = read_entries(ours), b = read_entries(theirs);
  ASSERT_EQ(a.size(), b.size());
  const double tol = double(n_tokens) * std::ldexp(1.0, -24) + 2e-5;
  double worst = 0;
  for (const auto& [name, eb] : b) {
    ASSERT_TRUE(a.count(name)) << "temper lacks " << name;
    const Entry& ea = a.at(name);
    EXPECT_EQ(ea.counts, eb.counts) << name;
    ASSERT_EQ(ea.sums.size(), eb.sums.size()) << name;
    for (size_t i = 0; i < eb.sums.size(); ++i) {
      const double rel = std::fabs(double(ea.sums[i]) - eb.sums[i]) / std::max(1e-30, double(std::fabs(eb.sums[i])));
      worst = std::max(worst, rel);
      EXPECT_LE(rel, tol) << name << "[" << i << "]: " << ea.sums[i] << " vs " << eb.sums[i];
    }
  }
  std::printf("worst relative difference %.3g (bound %.3g) over %zu entries\n", worst, tol, b.size());
}

TEST_F(Imatrix, EqualsLlamaImatrix) {
  TempDir d;
  llama_imatrix(d / "theirs.gguf", 128);
  const RunResult r = run_temper("imatrix " + f32() + " --text " + kText + " --ctx 128 -o " + (d / "ours.gguf") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["chunks"], 14);
  expect_same(d / "ours.gguf", d / "theirs.gguf", 14 * 128);
  GgufFile f(d / "ours.gguf");
  EXPECT_EQ(f.get_u32("imatrix.chunk_count"), 14u);
  EXPECT_EQ(f.get_u32("imatrix.chunk_size"), 128u);
}

// ctx 514: llama.cpp evaluates 3 chunks side by side in micro-batches of 170 tokens of each, so
// the last 4 tokens of every chunk form a 12-row micro-batch, which it skips for dense matrices.
TEST_F(Imatrix, EqualsLlamaImatrixWithSmallMicroBatch) {
  TempDir d;
  llama_imatrix(d / "theirs.gguf", 514);
  ASSERT_EQ(run_temper("imatrix " + f32() + " --text " + kText + " --ctx 514 -o " + (d / "ours.gguf")).exit_code, 0);
  expect_same(d / "ours.gguf", d / "theirs.gguf", 3 * 514);
  EXPECT_EQ(read_entries(d / "ours.gguf").at("blk.0.attn_q.weight").counts, std::vector<float>{3 * 510});
}

// Qwen3-MoE (a tiny random checkpoint from scripts/tiny_models.py): per-expert sums and counts
// of only the tokens routed to each expert, and the router as a dense matrix.
TEST_F(Imatrix, MoeExpertsEqualLlamaImatrix) {
  TempDir d;
  RunResult r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/scripts/tiny_models.py " + (d / "tiny") +
                          " --dtype f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string moe = d / "moe.gguf";
  ASSERT_EQ(run_temper("quantize " + (d / "tiny/qwen3moe") + " -t F32 -o " + moe).exit_code, 0);
  r = run_shell(kTools + "llama-imatrix -m " + moe + " -f " + kText + " -c 64 -o " + (d / "theirs.gguf") +
                " -fa off -ctk f32 -ctv f32 -t 1 --no-ppl 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_temper("imatrix " + moe + " --text " + kText + " --ctx 64 -o " + (d / "ours.gguf") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int chunks = Json::parse(r.out)["chunks"];
  expect_same(d / "ours.gguf", d / "theirs.gguf", int64_t(chunks) * 64);
  const auto e = read_entries(d / "ours.gguf");
  ASSERT_TRUE(e.count("blk.0.ffn_down_exps.weight"));
  EXPECT_GT(e.at("blk.0.ffn_down_exps.weight").counts.size(), 1u);
  EXPECT_TRUE(e.count("blk.0.ffn_gate_inp.weight"));
}

// The file temper writes gives the same quantized bytes in llama-quantize and temper quantize.
TEST_F(Imatrix, QuantizesAlikeInLlamaQuantize) {
  TempDir d;
  ASSERT_EQ(run_temper("imatrix " + f32() + " --text " + kText + " --ctx 128 -o " + (d / "im.gguf")).exit_code, 0);
  ASSERT_EQ(run_temper("imatrix " + f32() + " --text " + kText + " --ctx 128 --legacy-dat -o " + (d / "im.dat")).exit_code, 0);
  for (const std::string type : {"Q4_K_M", "IQ4_XS"}) {
    for (const std::string im : {"im.gguf", "im.dat"}) {
      const std::string ours = d / ("ours-" + im + ".gguf"), theirs = d / ("theirs-" + im + ".gguf");
      RunResult r = run_temper("quantize " + f32() + " -t " + type + " -o " + ours + " --force --imatrix " + (d / im));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      fs::remove(theirs);
      r = run_shell(kTools + "llama-quantize --imatrix " + (d / im) + " " + f32() + " " + theirs + " " + type + " 2>&1");
      ASSERT_EQ(r.exit_code, 0) << r.out;
      std::string report;
      EXPECT_TRUE(gguf_same(ours, theirs, std::string("--ignore-keys ") + kDescriptiveKeys +
                            ",quantize.imatrix.file --ignore-key-prefix quantize.imatrix", &report))
          << type << " " << im << ":\n" << report;
    }
  }
}

// Chat records rendered (here without a template: stories260K has none) into one token stream.
TEST(ImatrixChat, ChatDataIsCollected) {
  TempDir d;
  const RunResult r = run_temper("imatrix " + kSample + " --data " + source_dir() + "/sample/facts_train.jsonl --ctx 64 -o " +
                                 (d / "o.gguf") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_GT(j["chunks"].get<int>(), 10);
  EXPECT_EQ(j["few_tokens"].size(), 0u);
  EXPECT_TRUE(read_entries(d / "o.gguf").count("blk.4.ffn_down.weight"));
}

// `temper imatrix ARGS -o OUT` fails with a message holding `needle` and writes nothing.
void expect_refused(const std::string& args, const std::string& needle) {
  TempDir d;
  const RunResult r = run_temper("imatrix " + kSample + " " + args + " --ctx 64 -o " + (d / "o.gguf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "o.gguf"));
}

TEST(ImatrixBadInput, TextShorterThanOneChunk) {
  TempDir d;
  write_file(d / "short.txt", "Once upon a time there was a cat.");
  expect_refused("--text " + (d / "short.txt"), "chunk needs 64");
}

TEST(ImatrixBadInput, ChatDataThatRendersToNothing) {
  TempDir d;
  write_file(d / "empty.jsonl", "\n  \n");
  expect_refused("--data " + (d / "empty.jsonl"), "render to no text");
}

// An imatrix for another model: entries naming no tensor, and entries of the wrong size, are
// refused naming them; tensors the recipe quantizes without an entry are reported.
TEST(ImatrixBadInput, ImatrixForAnotherModel) {
  TempDir d;
  auto dat = [&](const std::vector<std::pair<std::string, int>>& entries) {
    std::string b;
    auto put32 = [&](int32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
    put32(int32_t(entries.size()));
    for (const auto& [name, n] : entries) {
      put32(int32_t(name.size()));
      b += name;
      put32(1);
      put32(n);
      for (int i = 0; i < n; ++i) {
        const float one = 1.0f;
        b.append(reinterpret_cast<const char*>(&one), 4);
      }
    }
    return b;
  };
  write_file(d / "other.dat", dat({{"blk.0.attn_q.weight", 64}, {"blk.40.attn_q.weight", 64}}));
  RunResult r = run_temper("quantize " + kSample + " -t Q4_K_M -o " + (d / "o.gguf") + " --imatrix " + (d / "other.dat"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'blk.40.attn_q.weight'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("another model"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "o.gguf"));

  write_file(d / "size.dat", dat({{"blk.0.attn_q.weight", 128}}));
  r = run_temper("quantize " + kSample + " -t Q4_K_M -o " + (d / "o.gguf") + " --imatrix " + (d / "size.dat"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("blk.0.attn_q.weight (128 values, the tensor needs 64)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "o.gguf"));

  write_file(d / "part.dat", dat({{"blk.0.attn_q.weight", 64}}));
  r = run_temper("quantize " + kSample + " -t Q4_K_M -o " + (d / "o.gguf") + " --imatrix " + (d / "part.dat"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no entry for"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'blk.0.attn_k.weight'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace temper
