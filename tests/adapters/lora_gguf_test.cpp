// `temper lora export --gguf` (issue 10): llama.cpp (node-llama-cpp) loads temper's GGUF LoRA
// adapters on temper's F32 and Q8_0 GGUF bases, and its logits equal temper's runtime with the
// same adapters (--lora); rsLoRA (folded into alpha) and user scales included. llama.cpp's own
// loader checks the layout (general.type, adapter.type, architecture, lora_a/lora_b shapes).
#include <gtest/gtest.h>

#include "adapters/lora_test_util.h"

namespace temper {
namespace {

using namespace lora_test;

class LoraGguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const test::TempDir& d = *dir_;
    make_adapters(d.path());
    quantize("F32", d / "f32.gguf");
    quantize("Q8_0", d / "q8.gguf");
    for (const char* a : {"a1", "a2"}) {
      const auto r = test::run_temper("lora export " + d / a + "/adapter.h5 --base " + model_dir() + " --gguf " +
                                      d / a + ".gguf");
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const auto r = test::run_temper("lora export " + d / "a1/adapter.h5 --base " + d / "q8.gguf" +
                                    " --type Q8_0 --gguf " + d / "a1_q8.gguf");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::TempDir* dir_;
};
test::TempDir* LoraGguf::dir_ = nullptr;

// F32 base: both compute in f32 from the same weights and adapters, differing in summation
// order only (runtime_gguf_test derives 2e-5 of the largest logit for the base alone; the
// adapter adds two short f32 products per projection). A missing q/k permutation of B, alpha
// not folded for rsLoRA (a 1.41x change of a2) or A/B transposed are each far outside it.
TEST_F(LoraGguf, LlamaCppMatchesTemperOnF32Base) {
  const test::TempDir& d = *dir_;
  const auto llama = llama_logits(d.path(), "f32_l", d / "f32.gguf", {{d / "a1.gguf", 1.0}, {d / "a2.gguf", 0.5}});
  const auto temper = temper_logits(d / "f32.gguf", {d / "a1/adapter.h5", d / "a2/adapter.h5:0.5"});
  const auto llama_base = llama_logits(d.path(), "f32_0", d / "f32.gguf", {});
  const double bound = 2e-5 * max_abs(temper);
  const double e = max_abs_diff(llama, temper);
  std::printf("F32 base: llama.cpp vs temper with adapters %.3g (bound %.3g), adapter effect %.3g\n", e, bound,
              max_abs_diff(llama, llama_base));
  EXPECT_LE(e, bound);
  EXPECT_GT(max_abs_diff(llama, llama_base), 1000 * bound) << "the adapters must matter";
}

// Q8_0 base: same quantized weights, but ggml quantizes activations to Q8_0 for its dot
// products and temper does not, so the base alone differs by e0 (0.2 here); with moderate f32
// adapters on top (multipliers 0.25 and 0.125: they still move logits by several units) the
// difference stays of that size: bound 2·e0 + the F32 bound. (At full strength the adapters
// change the activations so much that the activation-rounding noise is re-drawn: 0.47. The
// exact layout check is the F32 test above.)
TEST_F(LoraGguf, LlamaCppMatchesTemperOnQ8Base) {
  const test::TempDir& d = *dir_;
  const double e0 = max_abs_diff(llama_logits(d.path(), "q8_0", d / "q8.gguf", {}), temper_logits(d / "q8.gguf", {}));
  const auto llama = llama_logits(d.path(), "q8_l", d / "q8.gguf", {{d / "a1.gguf", 0.25}, {d / "a2.gguf", 0.125}});
  const auto temper = temper_logits(d / "q8.gguf", {d / "a1/adapter.h5:0.25", d / "a2/adapter.h5:0.125"});
  const double bound = 2 * e0 + 2e-5 * max_abs(temper);
  const double e = max_abs_diff(llama, temper), effect = max_abs_diff(temper, temper_logits(d / "q8.gguf", {}));
  std::printf("Q8_0 base: llama.cpp vs temper: base %.3g, with adapters %.3g (bound %.3g), adapter effect %.3g\n", e0,
              e, bound, effect);
  EXPECT_LE(e, bound);
  EXPECT_GT(effect, 4 * bound) << "the adapters must matter";
}

// A Q8_0-typed adapter (lora_a in Q8_0; lora_b rows of r = 4 values fall back to F16): its
// rounding (Q8_0: <= 1/254 of a block's largest |A|; F16: 2^-11 relative) changes the
// adapter's output by well under 2% of its effect.
TEST_F(LoraGguf, Q8AdapterIsCloseToF32Adapter) {
  const test::TempDir& d = *dir_;
  const auto f32 = llama_logits(d.path(), "f32_a1", d / "f32.gguf", {{d / "a1.gguf", 1.0}});
  const auto q8 = llama_logits(d.path(), "q8_a1", d / "f32.gguf", {{d / "a1_q8.gguf", 1.0}});
  const auto base = llama_logits(d.path(), "f32_0b", d / "f32.gguf", {});
  const double effect = max_abs_diff(f32, base), e = max_abs_diff(q8, f32);
  std::printf("Q8_0 adapter vs F32 adapter: %.3g (adapter effect %.3g)\n", e, effect);
  EXPECT_GT(e, 0);
  EXPECT_LE(e, 0.02 * effect);
}

// An adapter for another base: refused naming the tensor, nothing written.
TEST_F(LoraGguf, AdapterForAnotherBaseIsRefused) {
  const test::TempDir& d = *dir_;
  const std::string bad = d / "bad.h5";
  auto r = test::run_shell(std::string(TEMPER_PYTHON) +
                           " -c \"import h5py,sys,shutil,numpy as np; shutil.copy(sys.argv[1], sys.argv[2]); "
                           "f=h5py.File(sys.argv[2],'a'); n='model.layers.1.self_attn.k_proj.lora_B'; "
                           "del f['adapters'][n]; f['adapters'].create_dataset(n, data=np.zeros((64,4),'f4'))\" " +
                           d / "a1/adapter.h5 " + bad);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("lora export " + bad + " --base " + d / "q8.gguf" + " --gguf " + d / "bad.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'model.layers.1.self_attn.k_proj' is (64, 64)"), std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + d / "bad.gguf").exit_code, 0);
  r = test::run_temper("lora export " + d / "a1/adapter.h5 --gguf " + d / "bad.gguf");
  EXPECT_EQ(r.exit_code, 2) << r.err;  // --base is required: a usage error
}

// --modelfile: the Modelfile's FROM and ADAPTER name exactly the base GGUF and the adapter just
// written (resolved from the Modelfile's folder, as Ollama does), and llama.cpp given that pair
// gives the logits of temper's runtime with the adapter (the F32 test's bound); the template is
// the one `quantize --modelfile` writes for the base. Refused (nothing written) on a base that
// is not a GGUF.
TEST_F(LoraGguf, AdapterModelfileNamesTheBaseAndTheAdapter) {
  const test::TempDir& d = *dir_;
  const test::TempDir out;  // another folder: FROM is then the base's absolute path
  auto r = test::run_temper("quantize " + model_dir() + " -t F32 -o " + out / "base.gguf --modelfile");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("lora export " + d / "a1/adapter.h5 --base " + d / "f32.gguf" + " --gguf " +
                       out / "ft-lora.gguf --modelfile");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("some Ollama versions refuse adapters"), std::string::npos) << r.err;
  const std::string mf = test::read_file(out / "ft-lora.Modelfile");
  auto value_of = [&](const std::string& key) {
    const size_t at = mf.find("\n" + key + " ");
    EXPECT_NE(at, std::string::npos) << key << " in\n" << mf;
    if (at == std::string::npos) return std::string();
    const size_t from = at + key.size() + 2;
    return mf.substr(from, mf.find('\n', from) - from);
  };
  const std::string from = value_of("FROM"), adapter = value_of("ADAPTER");
  EXPECT_EQ(from, std::filesystem::absolute(d / "f32.gguf").lexically_normal().string());
  EXPECT_EQ(adapter, "./ft-lora.gguf");
  const std::string base_mf = test::read_file(out / "base.Modelfile");
  EXPECT_EQ(mf.substr(mf.find("\n\n")), base_mf.substr(base_mf.find("\n\n")) +
                                          "\n# LoRA adapter (llama.cpp GGUF LoRA)\nADAPTER ./ft-lora.gguf\n");
  const auto llama = llama_logits(d.path(), "mf_l", from, {{out / adapter.substr(2), 1.0}});
  const auto temper = temper_logits(d / "f32.gguf", {d / "a1/adapter.h5"});
  const double bound = 2e-5 * max_abs(temper);
  EXPECT_LE(max_abs_diff(llama, temper), bound) << "llama.cpp on the Modelfile's FROM + ADAPTER";
  EXPECT_GT(max_abs_diff(temper, temper_logits(d / "f32.gguf", {})), 1000 * bound) << "the adapter must matter";

  r = test::run_temper("lora export " + d / "a1/adapter.h5 --base " + model_dir() + " --gguf " +
                       out / "h5-base.gguf --modelfile");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Ollama's ADAPTER needs FROM a GGUF base"), std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + out / "h5-base.gguf").exit_code, 0);
  EXPECT_NE(test::run_shell("test -e " + out / "h5-base.Modelfile").exit_code, 0);
}

}  // namespace
}  // namespace temper
