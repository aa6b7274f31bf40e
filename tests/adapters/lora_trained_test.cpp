// A trained adapter (issue 10: "a trained adapter survives all of the above"): `temper train`
// learns an invented fact on stories260K; through the GGUF LoRA in llama.cpp and through the
// merged Q8_0 GGUF the fine-tuned model still prefers the trained continuation, and llama.cpp
// with the adapter equals temper's runtime with it.
#include <gtest/gtest.h>

#include "adapters/lora_test_util.h"

namespace temper {
namespace {

using namespace lora_test;

TEST(LoraTrained, TrainedAdapterSurvivesExportAndMerge) {
  const test::TempDir d;
  test::write_file(d / "data.jsonl",
                   "{\"text\": \"The purple robot named Zork liked to eat blue socks.\"}\n"
                   "{\"text\": \"Zork the purple robot ate socks every day.\"}\n");
  auto r = test::run_temper("-t 2 train " + model_dir() + " --data " + d / "data.jsonl" + " -o " + d / "ft.h5" +
                            " --steps 30 --rank 4 --alpha 8 --lr 2e-2 --seq 32 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  quantize("F32", d / "f32.gguf");
  r = test::run_temper("lora export " + d / "ft.h5 --base " + d / "f32.gguf --gguf " + d / "ft.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("lora merge " + model_dir() + " " + d / "ft.h5 -t Q8_0 -o " + d / "ft.q8.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Mean log-probability of the training text's tokens (from the model's own tokenizer).
  const auto m = verify::load_eval_model(model_dir(), false);
  std::vector<int32_t> ids = {1};
  for (int32_t t : m->tok->encode("The purple robot named Zork liked to eat blue socks.", false, false)) ids.push_back(t);
  auto mean_logp = [&](const std::vector<double>& logits) {
    const size_t V = logits.size() / ids.size();
    double s = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      double mx = -1e300, z = 0;
      for (size_t v = 0; v < V; ++v) mx = std::max(mx, logits[i * V + v]);
      for (size_t v = 0; v < V; ++v) z += std::exp(logits[i * V + v] - mx);
      s += logits[i * V + size_t(ids[i + 1])] - mx - std::log(z);
    }
    return s / double(ids.size() - 1);
  };
  auto temper_run = [&](const std::string& model, const std::vector<std::string>& loras) {
    const auto em = verify::load_eval_model(model, true, loras);
    forward::Session s(*em->model, 64);
    const std::vector<float> out = s.eval(ids);
    return std::vector<double>(out.begin(), out.end());
  };
  auto llama_run = [&](const std::string& name, const std::string& model,
                       const std::vector<std::pair<std::string, double>>& loras) {
    Json lora = Json::array();
    for (const auto& [p, sc] : loras) lora.push_back({{"path", p}, {"scale", sc}});
    const std::string out = d / (name + ".f32"), jobs = d / (name + ".json");
    test::write_file(jobs, Json::array({{{"model", model}, {"lora", lora}, {"tokens", ids}, {"out", out}}}).dump());
    const auto rr = test::run_shell("TEMPER_LLAMA_REF_DIR=" + std::string(TEMPER_LLAMA_REF_DIR) + " node " +
                                    test::source_dir() + "/tests/adapters/llama_lora.mjs " + jobs);
    EXPECT_EQ(rr.exit_code, 0) << rr.err;
    return read_values<float>(out);
  };
  const double base = mean_logp(temper_run(model_dir(), {}));
  const auto tuned_logits = temper_run(d / "f32.gguf", {d / "ft.h5"});
  const double tuned = mean_logp(tuned_logits);
  const auto llama_logits_ft = llama_run("ft", d / "f32.gguf", {{d / "ft.gguf", 1.0}});
  const double llama_tuned = mean_logp(llama_logits_ft);
  const double merged_q8 = mean_logp(llama_run("q8", d / "ft.q8.gguf", {}));
  std::printf("mean log p of the trained sentence: base %.3f, temper --lora %.3f, llama.cpp + GGUF LoRA %.3f, "
              "llama.cpp merged Q8_0 %.3f\n", base, tuned, llama_tuned, merged_q8);
  // The run learned the sentence (a clear gain, not noise) ...
  EXPECT_GT(tuned, base + 1.0);
  // ... llama.cpp with the exported adapter computes the same model (F32 bound of lora_gguf_test) ...
  EXPECT_LE(max_abs_diff(llama_logits_ft, tuned_logits), 2e-5 * max_abs(tuned_logits));
  // ... and the merged, Q8_0-quantized model keeps most of the gain.
  EXPECT_GT(merged_q8, base + 0.8 * (tuned - base));
}

}  // namespace
}  // namespace temper
