// PEFT folders in and out (issue 10): temper adapter -> PEFT -> import gives identical tensors;
// PEFT folders written by the PyTorch test code (PEFT key names, rsLoRA) import and give the
// reference logits; temper's PEFT export read by that independent code gives temper's logits;
// what temper cannot represent is refused by key or tensor name, nothing written.
#include <gtest/gtest.h>

#include "adapters/lora_test_util.h"
#include "core/error.h"

namespace temper {
namespace {

using namespace lora_test;

class LoraPeft : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    make_adapters(dir_->path());
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::TempDir* dir_;
};
test::TempDir* LoraPeft::dir_ = nullptr;

// Same tensors (bytes), names, rank, alpha and rsLoRA flag in two adapter files (h5py).
test::RunResult same_adapter(const std::string& x, const std::string& y) {
  return test::run_shell(std::string(TEMPER_PYTHON) +
                         " -c \"import h5py,sys; f=h5py.File(sys.argv[1]); g=h5py.File(sys.argv[2]); "
                         "a=f['adapters']; b=g['adapters']; "
                         "ok=sorted(a)==sorted(b) and all(a[k][()].tobytes()==b[k][()].tobytes() for k in a) and "
                         "all(f.attrs[k]==g.attrs[k] for k in ('rank','alpha','rslora','scale','base_arch')); "
                         "sys.exit(0 if ok else 1)\" " + x + " " + y);
}

TEST_F(LoraPeft, RoundTripGivesIdenticalTensors) {
  const test::TempDir& d = *dir_;
  for (const char* a : {"a1", "a2"}) {  // a2 is rsLoRA
    SCOPED_TRACE(a);
    auto r = test::run_temper("lora export " + d / a + "/adapter.h5 --peft " + d / a + "_out");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = test::run_temper("lora import " + d / a + "_out --base " + model_dir() + " -o " + d / a + "_rt.h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = same_adapter(d / a + "/adapter.h5", d / a + "_rt.h5");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  // The exported config says what PEFT needs to load it.
  const Json c = parse_json(test::read_file(d / "a2_out/adapter_config.json"), "config");
  EXPECT_EQ(c["peft_type"], "LORA");
  EXPECT_EQ(c["task_type"], "CAUSAL_LM");
  EXPECT_EQ(c["r"], 2);
  EXPECT_EQ(c["use_rslora"], true);
  EXPECT_EQ(c["target_modules"], Json({"down_proj", "q_proj", "v_proj"}));
}

// Import of the PyTorch-written PEFT folders; export read back by the PyTorch code. Bound: the
// f32-vs-float64 1e-4 of lora_runtime_test. Dropping rsLoRA (scale 4/2 instead of 4/sqrt 2)
// or a swapped A/B fails it.
TEST_F(LoraPeft, ImportedPeftGivesReferenceLogitsAndExportIsReadByReference) {
  const test::TempDir& d = *dir_;
  for (const char* a : {"a1", "a2"}) {
    const auto r = test::run_temper("lora import " + d / a + "/peft --base " + model_dir() + " -o " + d / a + "_imp.h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto ref = reference(d / "ref12.f64", d / "a1/peft:1 " + d / "a2/peft:0.5");
  const auto imported = temper_logits(model_dir(), {d / "a1_imp.h5", d / "a2_imp.h5:0.5"});
  const double e = max_abs_diff(imported, ref), tol = 1e-4 * max_abs(ref);
  std::printf("imported PEFT vs PyTorch: %.3g (bound %.3g)\n", e, tol);
  EXPECT_LE(e, tol);

  auto r = test::run_temper("lora export " + d / "a2/adapter.h5 --peft " + d / "a2_exp");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ref2 = reference(d / "ref2.f64", d / "a2_exp:0.5");
  const double e2 = max_abs_diff(temper_logits(model_dir(), {d / "a2/adapter.h5:0.5"}), ref2);
  std::printf("temper's PEFT export read by the PyTorch code: %.3g (bound %.3g)\n", e2, tol);
  EXPECT_LE(e2, tol);
  EXPECT_GT(max_abs_diff(ref2, reference(d / "base.f64", "")), 100 * tol);
}

// Each case edits a copy of a1/peft with python and must be refused naming `expect`.
TEST_F(LoraPeft, UnsupportedThingsAreRefusedByName) {
  const test::TempDir& d = *dir_;
  struct Case {
    const char* name;
    std::string edit, expect;
  } cases[] = {
      {"dora", "c['use_dora']=True", "use_dora = true: DoRA"},
      {"bias", "c['bias']='all'", "bias = \"all\""},
      {"save", "c['modules_to_save']=['lm_head']", "modules_to_save"},
      {"type", "c['peft_type']='IA3'", "peft_type = \"IA3\": only LORA"},
      {"rank", "del c['r']", "r (the rank) is missing"},
      {"pattern", "c['rank_pattern']={'q_proj': 8}", "rank_pattern"},
      {"pattern_rank", "c['rank_pattern']={'layers.0.self_attn.q_proj': 8}; "
                       "t['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']=np.ones((8,64)); "
                       "t['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight']=np.ones((64,8))",
       "'model.layers.0.self_attn.q_proj' has rank 8 (rank_pattern) with 8 non-zero components, more than "
       "the adapter's r 4"},
      {"magnitude", "t['base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector']=np.ones(64)",
       "tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector'"},
      {"target", "t['base_model.model.model.layers.0.self_attn.q_norm.lora_A.weight']=np.ones((4,8)); "
                 "t['base_model.model.model.layers.0.self_attn.q_norm.lora_B.weight']=np.ones((8,4))",
       "tensor 'model.layers.0.self_attn.q_norm' is not one of the base's"},
      {"shape", "t['base_model.model.model.layers.3.mlp.up_proj.lora_B.weight']=np.ones((100,4))",
       "'model.layers.3.mlp.up_proj' is (100, 64)"},
      {"half", "del t['base_model.model.model.layers.2.mlp.down_proj.lora_B.weight']",
       "model.layers.2.mlp.down_proj.lora_B.weight is missing"},
      {"layer", "t['base_model.model.model.layers.9.mlp.up_proj.lora_A.weight']=np.ones((4,64)); "
                "t['base_model.model.model.layers.9.mlp.up_proj.lora_B.weight']=np.ones((172,4))",
       "tensor 'model.layers.9.mlp.up_proj' is not one of the base's"},
  };
  // One python run writes every edited copy of a1/peft (bad_<name>).
  std::string prog = "import sys,json,shutil,numpy as np; sys.path.insert(0, sys.argv[2]); import peft_ref as P\n";
  for (const Case& c : cases)
    prog += cat("d=sys.argv[1]+'/bad_", c.name, "'; shutil.copytree(sys.argv[1]+'/a1/peft', d); ",
                "c=json.load(open(d+'/adapter_config.json')); t=P.read_safetensors(d+'/adapter_model.safetensors'); ",
                c.edit, "; json.dump(c, open(d+'/adapter_config.json','w')); ",
                "P.write_safetensors(d+'/adapter_model.safetensors', t)\n");
  test::write_file(d / "make_bad.py", prog);
  const auto e = test::run_shell(std::string(TEMPER_PYTHON) + " " + d / "make_bad.py " + d.path() + " " +
                                 test::source_dir() + "/tests/adapters");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dst = d / (std::string("bad_") + c.name);
    const auto r = test::run_temper("lora import " + dst + " --base " + model_dir() + " -o " + dst + ".h5");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_NE(test::run_shell("test -e " + dst + ".h5").exit_code, 0);
  }
}

// adapter_model.bin (torch.save, as older PEFT wrote it), read without running its pickle.
// Expected tensors come from PyTorch itself: the same values saved as safetensors by the
// reference code, so the imported adapters must be byte-identical. Variants cover bfloat16 with
// transposed (non-row-major) strides, an OrderedDict with _metadata whose A and B share one
// storage at offsets, a pickle that would run a shell command, and the pre-1.6 format.
TEST_F(LoraPeft, PickledAdapterImportsWithoutRunningThePickle) {
  const test::TempDir& d = *dir_;
  const auto made = test::run_shell(py("pickles " + d / "a1/peft " + d / "pk"));
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto import = [&](const std::string& from, const std::string& to) {
    return test::run_temper("lora import " + from + " --base " + model_dir() + " -o " + to);
  };
  ASSERT_EQ(import(d / "a1/peft", d / "pk/st.h5").exit_code, 0);
  for (const char* bin : {"a1/peft_bin", "pk/bin_ordered_shared"}) {
    SCOPED_TRACE(bin);
    const auto r = import(d / bin, d / bin + ".h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(same_adapter(d / "pk/st.h5", d / bin + ".h5").exit_code, 0);
  }
  ASSERT_EQ(import(d / "pk/st_bf16", d / "pk/st_bf16.h5").exit_code, 0);
  auto r = import(d / "pk/bin_bf16_strided", d / "pk/bf16.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(same_adapter(d / "pk/st_bf16.h5", d / "pk/bf16.h5").exit_code, 0);

  r = import(d / "pk/bin_evil", d / "pk/evil.h5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("names posix.system, which a state dict of tensors does not need"), std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + d / "pk/pwned").exit_code, 0);
  EXPECT_NE(test::run_shell("test -e " + d / "pk/evil.h5").exit_code, 0);
  r = import(d / "pk/bin_legacy", d / "pk/legacy.h5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("saved by PyTorch before 1.6"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace temper
