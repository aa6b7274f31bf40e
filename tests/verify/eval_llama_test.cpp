// `temper eval --protocol llama` against llama.cpp's own `llama-perplexity` (the pinned release,
// compiled by scripts/setup-llama-ref.sh) on GGUFs of the sample model (stories260K, trained at
// ctx 512) over the TinyStories sample text (1,878 tokens: 14 chunks at ctx 128, 3 at ctx 512).
//
// llama-perplexity runs with `-fa off -ctk f32 -ctv f32`: by default its KV cache is f16 and its
// CPU flash attention rounds to f16, which moves the 4th decimal of the PPL (6.6860 instead of
// 6.6853 here); with an f32 cache and plain attention ggml computes an F32 model in f32 as temper
// does, so the printed numbers must be identical. Quantized matmuls in ggml also round the
// activations to 8 bits (Q8_0 blocks for Q8_0 weights), which temper does not: see QuantizedModel.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "util/test_util.h"

namespace temper {
namespace {

const std::string kSample = test::source_dir() + "/sample/stories260K";
const std::string kText = test::fixture("text/tinystories_sample.txt");
const std::string kTool = std::string(TEMPER_LLAMA_REF_DIR) + "/tools/bin/llama-perplexity";

// What both programs print: the running PPL after each chunk and the final line.
struct Printed {
  std::vector<std::string> chunks;  // "6.6853" ...
  std::string final_line;           // "PPL = 6.6853 +/- 0.71761"
  double ppl = 0;
};

Printed parse(const std::string& out) {
  Printed p;
  const std::regex chunk(R"(\[(\d+)\](\d+\.\d+),)"), fin(R"(Final estimate: (PPL = (\d+\.\d+) \+/- \d+\.\d+))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), chunk); it != std::sregex_iterator(); ++it) {
    EXPECT_EQ(std::stoul((*it)[1]), p.chunks.size() + 1) << out;
    p.chunks.push_back((*it)[2]);
  }
  std::smatch m;
  if (std::regex_search(out, m, fin)) {
    p.final_line = m[1];
    p.ppl = std::stod(m[2]);
  }
  return p;
}

class EvalLlamaProtocol : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(test::run_shell("test -x " + kTool).exit_code == 0)
        << kTool << " missing: run scripts/setup-llama-ref.sh";
    dir_ = new test::TempDir();
    for (const char* t : {"F32", "Q8_0"}) {
      const test::RunResult r = test::run_temper("quantize " + kSample + " -t " + t + " -o " + gguf(t));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string gguf(const std::string& type) { return *dir_ / ("stories260K-" + type + ".gguf"); }

  static Printed llama(const std::string& model, const std::string& args) {
    // -t 1: one thread is plenty for 260K parameters, and the result does not depend on it.
    const test::RunResult r =
        test::run_shell(kTool + " -m " + model + " -f " + kText + " -fa off -ctk f32 -ctv f32 -t 1 " + args + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    Printed p = parse(r.out);
    EXPECT_FALSE(p.final_line.empty()) << r.out;
    return p;
  }
  static Printed temper(const std::string& model, const std::string& args) {
    const test::RunResult r = test::run_temper("eval " + model + " --text " + kText + " " + args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Printed p = parse(r.out);
    EXPECT_FALSE(p.final_line.empty()) << r.out;
    return p;
  }
  static test::TempDir* dir_;
};
test::TempDir* EvalLlamaProtocol::dir_ = nullptr;

// F32: every printed digit of every chunk's running PPL and of the final estimate and its
// uncertainty, at ctx 128 (14 chunks) and at the training context 512 (3 chunks).
TEST_F(EvalLlamaProtocol, F32MatchesLlamaPerplexityToThePrintedDigits) {
  for (const int ctx : {128, 512}) {
    const Printed want = llama(gguf("F32"), "-c " + std::to_string(ctx));
    const Printed got = temper(gguf("F32"), "--protocol llama --ctx " + std::to_string(ctx));
    std::printf("ctx %d: llama-perplexity %s, temper %s\n", ctx, want.final_line.c_str(), got.final_line.c_str());
    EXPECT_EQ(want.chunks.size(), size_t(1879 / ctx));  // 1,878 text tokens + BOS, whole chunks only
    EXPECT_EQ(got.chunks, want.chunks) << "ctx " << ctx;
    EXPECT_EQ(got.final_line, want.final_line) << "ctx " << ctx;
  }
}

// --chunks N scores the first N chunks only, in both programs.
TEST_F(EvalLlamaProtocol, ChunksOptionMatches) {
  const Printed want = llama(gguf("F32"), "-c 128 --chunks 5");
  const Printed got = temper(gguf("F32"), "--protocol llama --ctx 128 --chunks 5");
  ASSERT_EQ(want.chunks.size(), 5u);
  EXPECT_EQ(got.chunks, want.chunks);
  EXPECT_EQ(got.final_line, want.final_line);
}

// Q8_0: the same chunks, but ggml's Q8_0 matmul quantizes each activation row to Q8_0 blocks
// (32 values sharing one f16 scale, 8-bit integers) before the dot products, and temper does not,
// so the numbers differ by that rounding: measured 0.14% at ctx 128 and 0.45% at ctx 512 on this
// model. Bound 1% -- still far tighter than the protocol differences the test exists to catch
// (the default windows protocol reads 7.62 vs llama-perplexity's 6.69 at ctx 128).
TEST_F(EvalLlamaProtocol, QuantizedModelWithinActivationRounding) {
  for (const int ctx : {128, 512}) {
    const Printed want = llama(gguf("Q8_0"), "-c " + std::to_string(ctx));
    const Printed got = temper(gguf("Q8_0"), "--protocol llama --ctx " + std::to_string(ctx));
    std::printf("Q8_0 ctx %d: llama-perplexity %s, temper %s (%.3f%%)\n", ctx, want.final_line.c_str(),
                got.final_line.c_str(), 100 * std::fabs(got.ppl / want.ppl - 1));
    EXPECT_EQ(got.chunks.size(), want.chunks.size());
    EXPECT_NEAR(got.ppl, want.ppl, 0.01 * want.ppl) << "ctx " << ctx;
  }
}

// Before --protocol llama, no eval setting gave llama-perplexity's number: the default windows
// score every prediction of [BOS]+127-token windows instead of the second half of each chunk.
TEST_F(EvalLlamaProtocol, DefaultProtocolDoesNotMatch) {
  const Printed want = llama(gguf("F32"), "-c 128");
  const test::RunResult r = test::run_temper("eval " + gguf("F32") + " --text " + kText + " --ctx 128");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(PPL (\d+\.\d+))"))) << r.out;
  const double ppl = std::stod(m[1]);
  std::printf("windows protocol %.4f vs llama-perplexity %.4f\n", ppl, want.ppl);
  EXPECT_GT(std::fabs(ppl / want.ppl - 1), 0.05);
}

}  // namespace
}  // namespace temper
