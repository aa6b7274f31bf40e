// `temper train --precision`: which compute path runs, and that a run cannot switch it.
// - f32 forced (TEMPER_NO_BF16=1, as on a CPU without native bf16): --precision bf16 says it
//   falls back, and its losses are bit for bit those of --precision f32.
// - bf16 where the CPU has it: the --json lines say bf16 and the losses differ from f32 (the
//   path really runs) by about bf16's rounding, not more.
// - A checkpoint of one precision is refused by a resume in the other, in one line.
// The gradients of the bf16 path are checked in lora_grad_test (LoraGrad.Bf16...).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/json.h"
#include "train/gemm_bf16.h"
#include "train/story_lines.h"
#include "util/test_util.h"

namespace temper {
namespace {

std::string train_args(const test::TempDir& dir, const std::string& out, const std::string& more,
                       int steps = 4) {
  return "--threads 2 train " + test::source_dir() + "/sample/stories260K --data " +
         dir / "data.jsonl" + " -o " + dir / out + " --steps " + std::to_string(steps) +
         " --rank 4 --seq 24 --batch 2 --lr 5e-3 --force " + more;
}

// What one step without --json (which silences the log) says about the compute path.
std::string compute_line(const test::TempDir& dir, const std::string& more,
                         const std::string& env = "") {
  const auto r = test::run_shell(env + test::build_dir() + "/temper " +
                                 train_args(dir, "log.h5", more, 1));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const size_t at = r.err.find("compute: ");
  return at == std::string::npos ? r.err : r.err.substr(at, r.err.find('\n', at) - at);
}

struct TrainRun {
  std::vector<double> losses;
  std::vector<std::string> precisions;
  std::string err;
};

TrainRun train(const test::TempDir& dir, const std::string& out, const std::string& more,
          const std::string& env = "") {
  const auto r = test::run_shell(env + test::build_dir() + "/temper " + train_args(dir, out, more + " --json"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  TrainRun run{.err = r.err};
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const Json j = parse_json(line, "--json");
    run.losses.push_back(j["loss"].get<double>());
    run.precisions.push_back(j["precision"].get<std::string>());
  }
  EXPECT_EQ(run.losses.size(), 4u) << r.out;
  return run;
}

TEST(TrainPrecision, ForcedF32IsTheF32PathBitForBit) {
  const test::TempDir dir;
  test::write_file(dir / "data.jsonl", test::story_jsonl());
  const TrainRun f32 = train(dir, "f32.h5", "--precision f32");
  const TrainRun forced = train(dir, "forced.h5", "--precision bf16", "TEMPER_NO_BF16=1 ");
  EXPECT_EQ(compute_line(dir, "--precision bf16", "TEMPER_NO_BF16=1 "),
            "compute: f32: TEMPER_NO_BF16 is set; --precision bf16 falls back to f32");
  for (const std::string& p : forced.precisions) EXPECT_EQ(p, "f32");
  EXPECT_EQ(forced.losses, f32.losses);  // same kernels, same inputs: same bits
}

TEST(TrainPrecision, Bf16RunsWhereNativeAndStaysCloseToF32) {
  if (!train::bf16_native())
    GTEST_SKIP() << "no native bf16 here (" << train::gemm_bf16_describe() << ")";
  const test::TempDir dir;
  test::write_file(dir / "data.jsonl", test::story_jsonl());
  const TrainRun f32 = train(dir, "f32.h5", "--precision f32");
  const TrainRun bf16 = train(dir, "bf16.h5", "");  // the default: auto
  EXPECT_EQ(compute_line(dir, "").rfind("compute: bf16 base products with f32 accumulation", 0), 0u)
      << compute_line(dir, "");
  double worst = 0;
  for (size_t i = 0; i < bf16.losses.size() && i < f32.losses.size(); ++i) {
    EXPECT_EQ(bf16.precisions[i], "bf16");
    worst = std::max(worst, std::fabs(bf16.losses[i] - f32.losses[i]) / f32.losses[i]);
  }
  std::printf("bf16 vs f32 losses: worst relative difference %.3g\n", worst);
  // Different arithmetic: the losses differ (seen 1.7e-3 relative at worst); by less than
  // 1e-2, the size of a few bf16 roundings (2^-8 each) compounded (lora_grad_test bounds
  // the gradients themselves).
  EXPECT_GT(worst, 0.0);
  EXPECT_LT(worst, 1e-2);
}

TEST(TrainPrecision, AResumeCannotSwitchPrecision) {
  if (!train::bf16_native())
    GTEST_SKIP() << "no native bf16 here (" << train::gemm_bf16_describe() << ")";
  const test::TempDir dir;
  test::write_file(dir / "data.jsonl", test::story_jsonl());
  train(dir, "a.h5", "--precision f32 --save-every 2");
  const auto r =
      test::run_temper(train_args(dir, "b.h5", "--precision bf16 --json --resume " + dir / "a.ckpt.h5"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--precision: checkpoint \"f32\", this run \"bf16\""), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
  EXPECT_NE(test::run_shell("test -e " + dir / "b.h5").exit_code, 0);
  // The same precision resumes.
  EXPECT_EQ(test::run_temper(train_args(dir, "b.h5", "--precision f32 --json --resume " + dir / "a.ckpt.h5"))
                .exit_code, 0);
}

}  // namespace
}  // namespace temper
