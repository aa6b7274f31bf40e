// temper eval and temper generate on stories260K (a real trained llama2.c model converted to HF)
// against the fixture's float64 numpy references.
#include <gtest/gtest.h>

#include <cmath>

#include "core/file.h"
#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {

const std::string kModel = test::fixture("model/stories260K-hf-f32");
const std::string kText = test::fixture("text/tinystories_sample.txt");

Json run_json(const std::string& args) {
  const test::RunResult r = test::run_temper(args);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  return parse_json(r.out, "stdout of temper " + args);
}

Json fixture_json(const std::string& rel) { return parse_json(read_text_file(test::fixture(rel)), rel); }

// The fixture's protocol is ctx 128, non-overlapping [BOS]+127-token windows, every prediction
// after BOS scored (its "protocol" field). The reference is float64; the forward pass is fp32
// with logits within 2e-4 of it (forward tests), so the mean of ~1900 log-probs moves by far
// less than 1e-5 relative.
TEST(VerifyEval, PerplexityMatchesFloat64Reference) {
  const Json ref = fixture_json("model/reference/ppl_kl_tinystories_sample.json");
  ASSERT_EQ(ref["ctx"].get<int>(), 128);
  const Json& want = ref["models"]["stories260K-hf-f32"];
  const Json got = run_json("eval " + kModel + " --text " + kText + " --ctx 128 --json");
  std::printf("eval: ppl %.9f, reference %.9f\n", got["ppl"].get<double>(), want["ppl"].get<double>());
  EXPECT_EQ(got["n_text_tokens"].get<int>(), ref["n_text_tokens"].get<int>());
  EXPECT_EQ(got["n_scored"].get<int>(), want["n_scored"].get<int>());
  EXPECT_NEAR(got["ppl"].get<double>(), want["ppl"].get<double>(), 1e-5 * want["ppl"].get<double>());
  EXPECT_NEAR(got["mean_nll"].get<double>(), want["mean_nll"].get<double>(), 1e-5 * want["mean_nll"].get<double>());
  const auto ci = got["ppl_ci95"];
  EXPECT_LT(ci[0].get<double>(), got["ppl"].get<double>());
  EXPECT_GT(ci[1].get<double>(), got["ppl"].get<double>());
}

// Overlapping windows (ctx 128, stride 63): each window scores its second half, positions
// 64..126, i.e. text tokens s+64 .. s+126; windows start every 63 tokens, so every text token
// from index 64 to the end is scored exactly once: 1878 - 64 = 1814 predictions.
TEST(VerifyEval, OverlappingWindowsScoreEachTokenOnce) {
  const Json got = run_json("eval " + kModel + " --text " + kText + " --ctx 128 --stride 63 --json");
  EXPECT_EQ(got["n_scored"].get<int>(), 1878 - 64);
  // More context per scored token than the non-overlapping windows: lower perplexity.
  EXPECT_LT(got["ppl"].get<double>(), 7.620070713390138);
}

// Greedy continuation of "Once upon a time" (BOS + prompt, 64 tokens, argmax) from the fixture,
// which reproduces the text llama2.c documents for this model.
TEST(VerifyGenerate, GreedyMatchesReferenceStory) {
  const Json ref = fixture_json("model/reference/greedy_once_upon_a_time.json");
  const Json got = run_json("generate " + kModel + " --prompt 'Once upon a time' -n 64 --json");
  EXPECT_EQ(got["prompt_ids"], ref["prompt_ids_with_bos"]);
  EXPECT_EQ(got["new_ids"], ref["new_ids"]);
  EXPECT_EQ(got["text"], ref["text"]);
  // Streaming output: the same text, printed piece by piece, then a newline.
  const test::RunResult r = test::run_temper("generate " + kModel + " --prompt 'Once upon a time' -n 64");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ref["text"].get<std::string>() + "\n");
}

// Sampling is reproducible from the seed and differs from greedy at a high temperature.
TEST(VerifyGenerate, SeededSamplingIsReproducible) {
  const std::string args = "generate " + kModel + " --prompt 'Once upon a time' -n 40 --temp 1.5 --top-k 40 --top-p 0.95 --json";
  const Json a = run_json(args + " --seed 7"), b = run_json(args + " --seed 7"), c = run_json(args + " --seed 8");
  EXPECT_EQ(a["new_ids"], b["new_ids"]);
  EXPECT_NE(a["new_ids"], c["new_ids"]);
  for (const Json& id : a["new_ids"]) EXPECT_LT(id.get<int>(), 512);
}

}  // namespace
}  // namespace temper
