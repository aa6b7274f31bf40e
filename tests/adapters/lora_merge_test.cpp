// `temper lora merge` (issue 10): the merged model's logits equal temper's runtime with the
// adapters and the PEFT-semantics PyTorch reference; the merged GGUF (-t) equals it in
// llama.cpp; a GGUF base merges into its dequantised weights; bad input refused.
#include <gtest/gtest.h>

#include "adapters/lora_test_util.h"

namespace temper {
namespace {

using namespace lora_test;

class LoraMerge : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    make_adapters(dir_->path());
    quantize("F32", *dir_ / "f32.gguf");
    quantize("Q8_0", *dir_ / "q8.gguf");
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::TempDir* dir_;
  static std::string adapters() { return *dir_ / "a1/adapter.h5 " + *dir_ / "a2/adapter.h5:0.5"; }
};
test::TempDir* LoraMerge::dir_ = nullptr;

// f32 base: (W + ΔW)x against Wx + s·B(Ax) differ by fp32 rounding of the merged weights
// (2^-24 relative per element) and the summation order: 2e-5 of the largest logit, as between
// the HF and GGUF runtimes (runtime_gguf_test). Against float64 PyTorch: the 1e-4 of
// lora_runtime_test. Merging with the wrong scale (multiplier or rsLoRA) or B·A transposed
// moves logits by several units.
TEST_F(LoraMerge, MergedCheckpointMatchesRuntimeAndPyTorch) {
  const test::TempDir& d = *dir_;
  auto r = test::run_temper("lora merge " + model_dir() + " " + adapters() + " -o " + d / "merged.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto merged = temper_logits(d / "merged.h5", {});
  const auto runtime = temper_logits(model_dir(), {d / "a1/adapter.h5", d / "a2/adapter.h5:0.5"});
  const auto ref = reference(d / "ref12.f64", d / "a1/peft:1 " + d / "a2/peft:0.5");
  const double e_rt = max_abs_diff(merged, runtime), e_ref = max_abs_diff(merged, ref);
  std::printf("merged .h5 vs runtime --lora %.3g (bound %.3g), vs PyTorch %.3g (bound %.3g)\n", e_rt,
              2e-5 * max_abs(ref), e_ref, 1e-4 * max_abs(ref));
  EXPECT_LE(e_rt, 2e-5 * max_abs(ref));
  EXPECT_LE(e_ref, 1e-4 * max_abs(ref));
  EXPECT_GT(max_abs_diff(merged, temper_logits(model_dir(), {})), 1.0);
}

// -t F32: straight to GGUF through quantize; llama.cpp on it equals temper's runtime with the
// adapters (same bound as lora_gguf_test's F32 case); from the F32 GGUF base, the merge stays a
// GGUF whose temper logits equal the runtime's on that base.
TEST_F(LoraMerge, MergedGgufMatchesInLlamaCpp) {
  const test::TempDir& d = *dir_;
  auto r = test::run_temper("lora merge " + model_dir() + " " + adapters() + " -t F32 -o " + d / "merged.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto runtime = temper_logits(model_dir(), {d / "a1/adapter.h5", d / "a2/adapter.h5:0.5"});
  const double e = max_abs_diff(llama_logits(d.path(), "merged", d / "merged.gguf", {}), runtime);
  std::printf("llama.cpp on merged F32 GGUF vs temper --lora: %.3g (bound %.3g)\n", e, 2e-5 * max_abs(runtime));
  EXPECT_LE(e, 2e-5 * max_abs(runtime));

  r = test::run_temper("lora merge " + d / "f32.gguf " + adapters() + " -o " + d / "merged_from_gguf.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double e2 = max_abs_diff(temper_logits(d / "merged_from_gguf.gguf", {}),
                                 temper_logits(d / "f32.gguf", {d / "a1/adapter.h5", d / "a2/adapter.h5:0.5"}));
  std::printf("merged from the F32 GGUF vs temper --lora on it: %.3g\n", e2);
  EXPECT_LE(e2, 2e-5 * max_abs(runtime));
}

// Q8_0 base: merged into the dequantised weights and requantized to Q8_0, with a warning. The
// merged model differs from the PyTorch reference by about the base's own quantisation error
// e_q (a moderate adapter, as in lora_runtime_test): bound 2·e_q.
TEST_F(LoraMerge, QuantizedBaseMergesIntoDequantisedWeights) {
  const test::TempDir& d = *dir_;
  const auto r = test::run_temper("lora merge " + d / "q8.gguf " + d / "a1/adapter.h5:0.25 -o " + d / "mq8.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("merged into its dequantised weights"), std::string::npos) << r.err;
  const double e_q = max_abs_diff(temper_logits(d / "q8.gguf", {}), reference(d / "base.f64", ""));
  const double e = max_abs_diff(temper_logits(d / "mq8.gguf", {}), reference(d / "ref_q.f64", d / "a1/peft:0.25"));
  std::printf("Q8_0 merge vs PyTorch %.3g (base error %.3g)\n", e, e_q);
  EXPECT_LE(e, 2 * e_q);
  const auto q = test::run_temper("inspect " + d / "mq8.gguf");
  EXPECT_NE(q.out.find("blk.0.attn_q.weight"), std::string::npos);
}

// A bf16 base: merged in f32, stored back as bf16 (the base's dtype), and the result is the
// f32 merge rounded once to bf16: within bf16's half-ulp (2^-9 relative) of W + ΔW, which the
// logits show as at most ~1% of the adapter's effect.
TEST_F(LoraMerge, Bf16BaseStaysBf16) {
  const test::TempDir& d = *dir_;
  const std::string bf16 = test::fixture("model/stories260K-hf-bf16");
  auto r = test::run_temper("lora merge " + bf16 + " " + d / "a1/adapter.h5 -o " + d / "mbf16.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("inspect " + d / "mbf16.h5");
  EXPECT_NE(r.out.find("model.layers.0.self_attn.q_proj.weight                       bf16"), std::string::npos) << r.out;
  const auto merged = temper_logits(d / "mbf16.h5", {});
  const auto runtime = temper_logits(bf16, {d / "a1/adapter.h5"});
  const double effect = max_abs_diff(runtime, temper_logits(bf16, {}));
  std::printf("bf16 merge vs runtime --lora on the bf16 base: %.3g (adapter effect %.3g)\n",
              max_abs_diff(merged, runtime), effect);
  EXPECT_LE(max_abs_diff(merged, runtime), 0.02 * effect);
}

TEST_F(LoraMerge, BadInputIsRefused) {
  const test::TempDir& d = *dir_;
  auto r = test::run_temper("lora merge " + model_dir() + " " + d / "a1/adapter.h5 -o " + d / "x.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("add -t F16, Q8_0"), std::string::npos) << r.err;
  r = test::run_temper("lora merge " + model_dir() + " " + d / "missing.h5 -o " + d / "x.h5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.h5: no such file"), std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + d / "x.h5").exit_code, 0);
  r = test::run_temper("lora merge " + model_dir() + " -o " + d / "x.h5");
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace temper
