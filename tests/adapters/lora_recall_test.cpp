// Learning for real (issue 9) and deploying it (issue 10): stories260K learns 40 invented
// question/answer facts (sample/facts_train.jsonl, chat `messages` records, interleaved with 40
// stories the base model itself wrote as replay) and recalls them through `temper compare
// --tasks --lora`, through llama.cpp with the exported GGUF LoRA on temper's F32 GGUF, and
// through the merged Q8_0 and Q4_K_M GGUFs (node-llama-cpp, greedy).
//
// Why the answers end in eight newlines: the model's EOS row sits in a cluster of 253 untrained
// embedding rows (cosine > 0.99 to each other: TinyStories separates stories with BOS, and the
// byte-fallback pieces never occur), so no LoRA can make EOS win over them and an answer never
// stops by itself. A newline is a trained token, so the model learns to follow the answer with
// newlines up to the --task-tokens budget, and the exact-match rule (last non-empty line) reads
// the answer.
//
// Seen (this machine, 2 threads, seed 0): base 0/40; temper --lora 40/40; llama.cpp + GGUF
// LoRA 40/40, merged Q8_0 40/40, merged Q4_K_M 40/40; the adapter at scale 0 gives the base's
// 0/40. Seeds 1, 2, 3: temper 40/40 each, llama.cpp Q4_K_M 38, 40, 38 (the weakest path). The
// threshold is 36/40 (90%, issue 9). Adapting only q,k,v,o instead of all seven projections
// falls to 37 (GGUF LoRA), 36 (Q8_0) and 34 (Q4_K_M) in llama.cpp.
//
// The adapter and the merged GGUFs are those scripts/demo_finetune.sh wrote (ctest runs
// demo_finetune_test first, fixture `finetune_demo`), so the demo's commands are what is
// checked here and nothing is trained or merged twice.
#include <gtest/gtest.h>

#include <filesystem>

#include "adapters/lora_test_util.h"
#include "verify/tasks.h"

namespace temper {
namespace {

using namespace lora_test;

constexpr int kTaskTokens = 8;  // the answers are at most 4 tokens; the rest are newlines

std::string facts_tasks() { return test::source_dir() + "/sample/facts_tasks.jsonl"; }

// Correct answers of `temper compare BASE --lora ADAPTER:SCALE --tasks FACTS`: {base, candidate}.
std::pair<int, int> compare_recall(const std::string& adapter, double scale) {
  const auto r = test::run_temper("-t 2 compare " + model_dir() + " --lora " + adapter + ":" + std::to_string(scale) +
                                  " --text " + test::source_dir() + "/sample/tinystories_sample.txt --tasks " +
                                  facts_tasks() + " --task-tokens " + std::to_string(kTaskTokens) + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const Json j = parse_json(r.out, "compare --json");
  return {j["base"]["tasks"]["correct"].get<int>(), j["candidates"][0]["tasks"]["correct"].get<int>()};
}

TEST(LoraRecall, FactsRecalledByTemperAndLlamaCppThroughAdapterAndMergedQuants) {
  const test::TempDir d;
  auto path = [&](const std::string& name) { return d / name; };
  const std::string demo = TEMPER_FINETUNE_DEMO_DIR, adapter = demo + "/facts.h5";
  ASSERT_TRUE(std::filesystem::exists(adapter)) << adapter << ": run demo_finetune_test first";

  const auto [base, tuned] = compare_recall(adapter, 1.0);
  // The check can fail: the same adapter at scale 0 leaves the base model, which recalls nothing.
  const int off = compare_recall(adapter, 0.0).second;
  std::printf("temper compare --tasks: base %d/40, --lora %d/40, --lora :0 %d/40\n", base, tuned, off);
  EXPECT_LE(base, 4);    // ~0%: the facts are invented
  EXPECT_GE(tuned, 36);  // >= 90%
  EXPECT_EQ(off, base);

  auto r = test::run_temper("quantize " + model_dir() + " -t F32 -o " + path("f32.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_temper("lora export " + adapter + " --base " + path("f32.gguf") + " --gguf " + path("ft.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<verify::TaskItem> tasks = verify::load_tasks(facts_tasks());
  ASSERT_EQ(tasks.size(), 40u);
  Json questions = Json::array();
  for (const auto& t : tasks) questions.push_back(t.question);
  struct Case {
    std::string name, model, lora;
    int min_correct;  // >= 90%, except the base (~0%)
  };
  const std::vector<Case> cases = {{"base F32", path("f32.gguf"), "", 0},
                                   {"F32 + GGUF LoRA", path("f32.gguf"), path("ft.gguf"), 36},
                                   {"merged Q8_0", demo + "/stories260K-facts.Q8_0.gguf", "", 36},
                                   {"merged Q4_K_M", demo + "/stories260K-facts.Q4_K_M.gguf", "", 36}};
  Json jobs = Json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    Json lora = Json::array();
    if (!cases[i].lora.empty()) lora.push_back({{"path", cases[i].lora}, {"scale", 1.0}});
    jobs.push_back({{"model", cases[i].model}, {"lora", lora}, {"questions", questions},
                    {"max_new", kTaskTokens}, {"out", path("answers" + std::to_string(i) + ".json")}});
  }
  test::write_file(path("jobs.json"), jobs.dump());
  const auto rr = test::run_shell("TEMPER_LLAMA_REF_DIR=" + std::string(TEMPER_LLAMA_REF_DIR) + " node " +
                                  test::source_dir() + "/tests/adapters/llama_lora.mjs " + path("jobs.json"));
  ASSERT_EQ(rr.exit_code, 0) << rr.err;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json answers = parse_json(test::read_file(path("answers" + std::to_string(i) + ".json")), "answers");
    ASSERT_EQ(answers.size(), tasks.size());
    int correct = 0;
    for (size_t k = 0; k < tasks.size(); ++k) {
      // The rule `temper compare --tasks` applies (last non-empty line, lowercased, final
      // punctuation dropped).
      const std::string given = verify::extract_answer(answers[k].get<std::string>(), false);
      correct += !given.empty() && given == tasks[k].answer;
    }
    std::printf("llama.cpp %-16s %d/40\n", cases[i].name.c_str(), correct);
    if (i == 0)
      EXPECT_LE(correct, 4) << cases[i].name;
    else
      EXPECT_GE(correct, cases[i].min_correct) << cases[i].name;
  }
}

}  // namespace
}  // namespace temper
