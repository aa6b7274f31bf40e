// PEFT semantics on every architecture (issue 10): for a tiny checkpoint of each architecture
// scripts/tiny_models.py writes, a PEFT adapter made by tests/adapters/peft_ref.py (PEFT's key
// names with the checkpoint's own prefix: model.language_model. for Gemma 4; rank 4, alpha 8
// on every dense projection each layer has) is imported by `temper lora import`, and temper's
// runtime with it gives the logits of peft_ref.py's float64 PyTorch reference applying
// W x + scaling · B A x to the same HF checkpoint; `temper lora merge` into an f32 checkpoint
// gives them too, and `lora export --peft` of the import writes back the same tensors. On
// Phi-3 (phi4-mini) the adapter is on PEFT's fused qkv_proj and gate_up_proj, applied by the
// reference on the fused module; temper adapts their row blocks.
#include <gtest/gtest.h>

#include <string>

#include "adapters/lora_test_util.h"

namespace temper {
namespace {

using namespace lora_test;

// The tiny models share stories260K's tokenizer, so kIds (< 512) are valid ids for each.
// phi4-mini: Phi-3's fused qkv_proj and gate_up_proj, which PEFT adapts as one module each and
// temper as their row blocks (import splits them; export fuses them back to the same tensors).
const char* const kArchs[] = {"llama",      "qwen3",      "qwen3moe",       "gemma3",
                              "gemma4-e2b", "gemma4-31b", "gemma4-26b-a4b", "phi4-mini-short"};

class LoraArch : public ::testing::TestWithParam<const char*> {};

// Bound: temper computes in f32 from the same (bf16-stored, so exactly representable) weights
// and f32 adapters that the reference uses in float64; 2-4 layers of dot products of length
// <= 256 round at ~K·2^-24 relative each, so 1e-4 of the largest logit leaves a wide margin
// (stories260K's 5 layers use the same bound in lora_runtime_test). The adapter moves the
// logits by far more (checked: > 100x the bound), so a missed or mis-mapped target, a wrong
// scaling or a transposed pair is outside it.
void check_imported_peft_adapter(const std::string& name, const std::string& targets, const test::TempDir& d) {
  auto r = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/scripts/tiny_models.py " +
                           d / "models --dtype f32 --only " + name);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string model = d / ("models/" + name);
  r = test::run_shell(py("make " + model + " " + d / "a 4 8 0 7 " + targets));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("lora import " + d / "a/peft --base " + model + " -o " + d / "imported.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = test::run_shell(py("logits " + model + " " + ids_csv() + " " + d / "base.f64"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_shell(py("logits " + model + " " + ids_csv() + " " + d / "ref.f64 " + d / "a/peft"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto base_ref = read_values<double>(d / "base.f64"), ref = read_values<double>(d / "ref.f64");
  const double tol = 1e-4 * max_abs(ref);
  ASSERT_GT(max_abs_diff(base_ref, ref), 100 * tol) << "the adapter must matter";

  const double e_base = max_abs_diff(temper_logits(model, {}), base_ref);
  const double e_lora = max_abs_diff(temper_logits(model, {d / "imported.h5"}), ref);
  r = test::run_temper("lora merge " + model + " " + d / "imported.h5 -o " + d / "merged.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double e_merged = max_abs_diff(temper_logits(d / "merged.h5", {}), ref);
  std::printf("%s: max |temper - torch| base %.3g, --lora %.3g, merged %.3g (bound %.3g)\n", name.c_str(), e_base,
              e_lora, e_merged, tol);
  EXPECT_LE(e_base, tol);
  EXPECT_LE(e_lora, tol);
  EXPECT_LE(e_merged, tol);

  // Round trip: export to PEFT, the same tensors under the same keys (up to the text model's
  // wrapper: temper writes transformers >= 4.50's model.language_model. for multimodal classes,
  // where the tiny Gemma 3 was stored in the older language_model.model. layout).
  r = test::run_temper("lora export " + d / "imported.h5 --peft " + d / "out --base " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_shell(std::string(TEMPER_PYTHON) + " -c \"import sys; sys.path.insert(0, '" + test::source_dir() +
                      "/tests/adapters'); import peft_ref as P; a=P.read_safetensors(sys.argv[1]); "
                      "b=P.read_safetensors(sys.argv[2]); n=lambda t: {k[k.index('layers.'):]: v for k, v in t.items()}; "
                      "a, b = n(a), n(b); sys.exit(0 if sorted(a)==sorted(b) and all((a[k]==b[k]).all() for k in a) "
                      "else 1)\" " +
                      d / "a/peft/adapter_model.safetensors " + d / "out/adapter_model.safetensors");
  EXPECT_EQ(r.exit_code, 0) << "PEFT -> temper -> PEFT changed names or values\n" << r.err;
}

TEST_P(LoraArch, ImportedPeftAdapterGivesThePeftLogits) {
  const test::TempDir d;
  check_imported_peft_adapter(GetParam(), "all", d);
}

// Qwen 3 MoE's per-expert projections (expert_gate/up/down, as `temper train --targets` names
// them): applied inside each expert at inference, merged into each expert's weight, exported
// to PEFT; a GGUF LoRA cannot hold them (llama.cpp stacks a layer's experts in one tensor), nor
// can a GGUF base take them in a merge: both refused by name, nothing written.
TEST(LoraArchExperts, Qwen3MoeExpertAdaptersGiveThePeftLogits) {
  const test::TempDir d;
  check_imported_peft_adapter("qwen3moe", "q,v,expert_gate,expert_up,expert_down", d);
  auto r = test::run_temper("quantize " + d / "models/qwen3moe -t F32 -o " + d / "base.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("lora export " + d / "imported.h5 --base " + d / "base.gguf --gguf " + d / "x.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("adapts one expert; llama.cpp's GGUF LoRA has no per-expert tensors"), std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + d / "x.gguf").exit_code, 0);
  r = test::run_temper("lora merge " + d / "base.gguf " + d / "imported.h5 -o " + d / "m.gguf -t Q8_0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot be merged into a GGUF base"), std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + d / "m.gguf").exit_code, 0);
  // On the GGUF base at inference the experts' adapters apply as on the HF base.
  r = test::run_shell(py("logits " + d / "models/qwen3moe " + ids_csv() + " " + d / "ref2.f64 " + d / "a/peft"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ref = read_values<double>(d / "ref2.f64");
  EXPECT_LE(max_abs_diff(temper_logits(d / "base.gguf", {d / "imported.h5"}), ref), 1e-4 * max_abs(ref));
}

// temper's own Phi-3 adapters: one per row block, each with its own A (as `temper train` makes
// them), all seven targets (rank 4, alpha 8) and a subset q,v,up (rank 2, alpha 4, rsLoRA).
// Out to PEFT they are one module per fused tensor, A stacked and B block-diagonal (rank 3r
// for q,k,v; 2r for q,v and gate,up; r for up alone, with zero rows for the blocks without an
// adapter), scale kept by rank_pattern/alpha_pattern; out to llama.cpp the same fused pairs on
// attn_qkv and ffn_up with the factor n (llama.cpp scales by alpha / rank of the tensor) folded
// into B. Checked by logits: the import of the export gives back each block's A and B (the
// zero columns of B dropped) plus zero adapters on blocks that had none, so not the same files:
// - peft_ref.py's float64 PEFT forward on the exported folder = temper's runtime with the
//   adapter (lora_arch's bound, 1e-4 of the largest logit), and = merge of the adapter into
//   the HF base and into the F32 GGUF (its fused attn_qkv / ffn_up rows);
// - `lora import` of that folder gives temper's logits again (bound 1e-5 of the largest logit:
//   the same f32 products, only the scale/rank bookkeeping could differ, and it moves them by
//   far more: a missing or wrong block, or the scale off by n or sqrt(n));
// - llama.cpp (node-llama-cpp) with the GGUF LoRA on temper's F32 GGUF = temper's runtime with
//   the adapter on that GGUF (lora_gguf_test's F32 bound, 2e-5 of the largest logit).
TEST(LoraArchPhi3, TemperBlockAdaptersExportFusedToPeftAndLlamaCpp) {
  const test::TempDir d;
  const std::string model = d / "models/phi4-mini-short";
  auto r = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/scripts/tiny_models.py " +
                           d / "models --dtype f32 --only phi4-mini-short");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("quantize " + model + " -t F32 -o " + d / "base.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_shell(py("logits " + model + " " + ids_csv() + " " + d / "base.f64"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto base_ref = read_values<double>(d / "base.f64");
  for (const std::string args : {"4 8 0 3 q,k,v,o,gate,up,down", "2 4 1 5 q,v,up"}) {
    SCOPED_TRACE(args);
    const std::string a = d / ("s" + args.substr(0, 1));
    r = test::run_shell(py("make " + model + " " + a + " " + args));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto temper = temper_logits(model, {a + "/adapter.h5"});
    const double tol = 1e-4 * max_abs(temper);
    ASSERT_GT(max_abs_diff(temper, base_ref), 100 * tol) << "the adapter must matter";

    r = test::run_temper("lora export " + a + "/adapter.h5 --peft " + a + "/peft --base " + model);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = test::run_shell(py("logits " + model + " " + ids_csv() + " " + a + "/ref.f64 " + a + "/peft"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const double e_peft = max_abs_diff(read_values<double>(a + "/ref.f64"), temper);
    r = test::run_temper("lora merge " + model + " " + a + "/adapter.h5 -o " + a + "/merged.h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const double e_merged = max_abs_diff(temper_logits(a + "/merged.h5", {}), temper);
    r = test::run_temper("lora import " + a + "/peft --base " + model + " -o " + a + "/back.h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const double e_back = max_abs_diff(temper_logits(model, {a + "/back.h5"}), temper);

    r = test::run_temper("lora export " + a + "/adapter.h5 --base " + d / "base.gguf --gguf " + a + "/lora.gguf");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto temper_gguf = temper_logits(d / "base.gguf", {a + "/adapter.h5"});
    const auto llama = llama_logits(a, "llama", d / "base.gguf", {{a + "/lora.gguf", 1.0}});
    const double e_llama = max_abs_diff(llama, temper_gguf), tol_llama = 2e-5 * max_abs(temper_gguf);
    // Merged into the GGUF base's fused attn_qkv / ffn_up (F32 stays F32).
    r = test::run_temper("lora merge " + d / "base.gguf " + a + "/adapter.h5 -o " + a + "/merged.gguf");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const double e_merged_gguf = max_abs_diff(temper_logits(a + "/merged.gguf", {}), temper_gguf);
    std::printf("%s: max |x - temper --lora|: PyTorch on the PEFT export %.3g, merged %.3g, merged GGUF %.3g "
                "(bound %.3g), re-imported %.3g (bound %.3g); llama.cpp GGUF LoRA %.3g (bound %.3g)\n",
                args.c_str(), e_peft, e_merged, e_merged_gguf, tol, e_back, 0.1 * tol, e_llama, tol_llama);
    EXPECT_LE(e_peft, tol);
    EXPECT_LE(e_merged, tol);
    EXPECT_LE(e_merged_gguf, tol);
    EXPECT_LE(e_back, 0.1 * tol);
    EXPECT_LE(e_llama, tol_llama);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, LoraArch, ::testing::ValuesIn(kArchs),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace temper
