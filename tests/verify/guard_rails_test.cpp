// eval/compare guard rails and re-use on the sample model (stories260K, trained at ctx 512):
// the training-context warning, --chunks / --max-tokens, and compare --save-base / --base-ref
// (round trip to identical numbers, the file checked with h5py and hashlib, mismatches refused).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {

const std::string kSample = test::source_dir() + "/sample/stories260K";
const std::string kText = test::fixture("text/tinystories_sample.txt");

class GuardRails : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    for (const char* t : {"F32", "Q8_0"}) {
      const test::RunResult r = test::run_temper("quantize " + kSample + " -t " + t + " -o " + gguf(t));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string gguf(const std::string& type) { return *dir_ / ("stories260K-" + type + ".gguf"); }
  static Json run_json(const std::string& args) {
    const test::RunResult r = test::run_temper(args + " --json");
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    return parse_json(r.out, "stdout of temper " + args);
  }
  static void expect_error(const std::string& args, std::initializer_list<std::string> needles) {
    const test::RunResult r = test::run_temper(args);
    EXPECT_NE(r.exit_code, 0) << args;
    for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  }
  static test::TempDir* dir_;
};
test::TempDir* GuardRails::dir_ = nullptr;

// Warn, not refuse, as llama-perplexity does: measuring past the training context is legitimate
// (RoPE scaling, degradation curves), but the number must not pass for a normal one.
TEST_F(GuardRails, ContextLongerThanTrainingWarns) {
  const std::string args = "eval " + gguf("F32") + " --text " + kText + " --ctx 1024 --chunks 1";
  const test::RunResult r = test::run_temper(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: --ctx 1024 is longer than the 512 tokens"), std::string::npos) << r.err;
  const Json j = run_json(args);  // --json is quiet on stderr: the warning is in the document
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_NE(j["warnings"][0].get<std::string>().find("512"), std::string::npos);
  EXPECT_EQ(j["n_ctx_train"].get<int>(), 512);
  EXPECT_TRUE(run_json("eval " + gguf("F32") + " --text " + kText + " --ctx 512 --chunks 1")["warnings"].empty());
  const test::RunResult c = test::run_temper("compare " + gguf("F32") + " " + gguf("Q8_0") + " --text " + kText +
                                             " --ctx 1024 --chunks 1");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.err.find("warning: --ctx 1024 is longer"), std::string::npos) << c.err;
}

// --chunks N scores the first N windows; --max-tokens M keeps the first M tokens. 3 windows of
// [BOS] + 127 tokens are exactly the first 381 tokens, so both must give the same numbers.
TEST_F(GuardRails, ChunksAndMaxTokens) {
  const std::string base = "eval " + gguf("F32") + " --text " + kText + " --ctx 128";
  const Json chunks = run_json(base + " --chunks 3");
  const Json tokens = run_json(base + " --max-tokens 381");
  EXPECT_EQ(chunks["n_windows"].get<int>(), 3);
  EXPECT_EQ(chunks["n_scored"].get<int>(), 381);
  EXPECT_EQ(tokens["n_used_tokens"].get<int>(), 381);
  EXPECT_EQ(tokens["n_text_tokens"].get<int>(), 1878);
  EXPECT_EQ(tokens["n_scored"].get<int>(), 381);
  EXPECT_EQ(chunks["ppl"], tokens["ppl"]);
  // llama protocol: 512 tokens (BOS included) are 4 chunks of 128, as llama-perplexity counts.
  const Json llama = run_json(base + " --protocol llama --max-tokens 512");
  EXPECT_EQ(llama["n_windows"].get<int>(), 4);
  EXPECT_EQ(llama["n_scored"].get<int>(), 4 * 63);
  expect_error(base + " --protocol llama --max-tokens 200", {"200 tokens", "at least 256"});
  expect_error(base + " --protocol llama --stride 64", {"--stride 64", "--protocol llama"});
  expect_error(base + " --chunks 0", {"--chunks"});
}

// compare takes the same scoring options: its base PPL under --protocol llama is eval's.
TEST_F(GuardRails, CompareScoresWhatEvalScores) {
  const std::string opts = " --text " + kText + " --ctx 128 --protocol llama --chunks 4";
  const Json e = run_json("eval " + gguf("F32") + opts);
  const Json c = run_json("compare " + gguf("F32") + " " + gguf("Q8_0") + opts);
  EXPECT_EQ(c["protocol"], "llama");
  EXPECT_EQ(c["n_scored"].get<int>(), 4 * 63);
  EXPECT_EQ(e["n_scored"], c["n_scored"]);
  EXPECT_NEAR(c["base"]["ppl"].get<double>(), e["ppl"].get<double>(), 1e-12 * e["ppl"].get<double>());
}

// --save-base writes the reference; --base-ref gives the very same numbers without running the
// base. The file is read back with h5py, and its hashes recomputed with Python's hashlib.
TEST_F(GuardRails, BaseReferenceRoundTrip) {
  const std::string ref = *dir_ / "ref.h5";
  const std::string cmp = "compare " + gguf("F32") + " " + gguf("Q8_0") + " --text " + kText + " --ctx 128";
  Json fresh = run_json(cmp + " --save-base " + ref);
  Json reused = run_json(cmp + " --base-ref " + ref);
  EXPECT_EQ(reused["base_ref"], ref);
  for (Json* j : {&fresh, &reused}) {
    j->erase("seconds");
    j->erase("base_ref");
  }
  EXPECT_EQ(fresh.dump(), reused.dump());
  for (const auto& e : std::filesystem::directory_iterator(dir_->path()))
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << "temporary file left: " << e.path();

  const std::string py = *dir_ / "check_ref.py";
  test::write_file(py, R"(import hashlib, sys, h5py, numpy as np
ref, base, text, ppl = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
with h5py.File(ref, "r") as f:
    a = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}  # fixed-length strings: bytes
    assert a["format"] == "temper-compare-base" and a["format_version"] == 1, dict(a)
    assert (a["protocol"], a["ctx"], a["stride"], a["top_k"], a["n_vocab"]) == ("windows", 128, 127, 64, 512), dict(a)
    assert a["base_sha256"] == sha(base), "base hash"
    assert a["text_sha256"] == sha(text), "text hash"
    tokens = f["tokens"][...]
    assert tokens.shape == (1878,) and a["tokens_sha256"] == hashlib.sha256(tokens.astype("<i4").tobytes()).hexdigest()
    n = f["nll"].shape[0]
    assert n == 1878 and f["topk_ids"].shape == (n, 64) and f["topk_logp"].shape == (n, 64)
    lp = f["topk_logp"][...]
    assert np.all(np.diff(lp, axis=1) <= 0), "rows sorted by descending log-prob"
    mass = np.exp(lp.astype(np.float64)).sum(1) + np.exp(f["log_rest"][...].astype(np.float64))
    assert np.allclose(mass, 1, atol=1e-5), mass
    got = float(np.exp(f["nll"][...].mean()))
    assert abs(got - ppl) <= 1e-12 * ppl, (got, ppl)
print("ok")
)");
  const test::RunResult r = test::run_shell(std::string(TEMPER_PYTHON) + " " + py + " " + ref + " " + gguf("F32") +
                                            " " + kText + " " + fresh["base"]["ppl"].dump());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok\n");

  // With no candidates, --save-base just saves.
  const Json only = run_json("compare " + gguf("F32") + " --text " + kText + " --ctx 128 --save-base " + (*dir_ / "only.h5"));
  EXPECT_TRUE(only["candidates"].empty());
  EXPECT_TRUE(std::filesystem::exists(*dir_ / "only.h5"));
}

// Another ctx, top-k, protocol, text or base model is refused, naming what differs.
TEST_F(GuardRails, BaseReferenceMismatchIsRefused) {
  const std::string ref = *dir_ / "ref128.h5";
  const std::string tail = " --text " + kText + " --ctx 128";
  run_json("compare " + gguf("F32") + tail + " --save-base " + ref);
  const std::string cmp = "compare " + gguf("F32") + " " + gguf("Q8_0");
  expect_error(cmp + " --text " + kText + " --ctx 64 --base-ref " + ref, {"does not fit", "--ctx 64 (file: 128)"});
  expect_error(cmp + tail + " --top-k 32 --base-ref " + ref, {"--top-k 32 (file: 64)"});
  expect_error(cmp + tail + " --protocol llama --base-ref " + ref, {"protocol llama (file: windows)"});
  expect_error(cmp + tail + " --chunks 2 --base-ref " + ref, {"--chunks 2 (file: 0)"});
  const std::string other_text = *dir_ / "other.txt";
  test::write_file(other_text, test::read_file(kText) + "\nOne more line.\n");
  expect_error(cmp + " --text " + other_text + " --ctx 128 --base-ref " + ref, {"text " + other_text, "sha256"});
  expect_error("compare " + gguf("Q8_0") + " " + gguf("F32") + tail + " --base-ref " + ref,
               {"base model " + gguf("Q8_0"), gguf("F32")});
  expect_error(cmp + tail + " --base-ref " + kText, {"base reference " + kText, "not an HDF5 file"});
  expect_error(cmp + tail + " --base-ref " + (*dir_ / "missing.h5"), {"missing.h5", "no such file"});
  expect_error(cmp + tail + " --base-ref " + ref + " --save-base " + (*dir_ / "x.h5"), {"cannot be combined"});
  // --save-base never overwrites an input, and a bad path fails before the base pass.
  expect_error(cmp + tail + " --save-base " + gguf("Q8_0"), {gguf("Q8_0"), "refusing to overwrite an input"});
  expect_error(cmp + tail + " --save-base " + (*dir_ / "no/such/dir/r.h5"), {"does not exist"});
}

}  // namespace
}  // namespace temper
