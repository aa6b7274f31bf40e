// `temper train --dry-run`: prints the trainable parameter count (checked against the count
// from the model's shapes), the estimated peak RSS and time per step, and writes nothing; the
// RSS estimate lies within a factor 1.25 of the peak RSS of the real run as /usr/bin/time
// measures it (an independent measurement, not temper's own). Run: stories260K, rank 8,
// 4 examples of 512 tokens per micro-batch, so the activations (~20 MiB) are a good part:
// leaving them out of the estimate would miss by a factor ~1.7.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>

#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {

TEST(TrainDryRun, PrintsParametersAndAnRssEstimateThatHolds) {
  const test::TempDir dir;
  test::write_file(dir / "moby.txt",
                   test::read_file(test::fixture("text/moby_dick.txt")).substr(0, 40000));
  const std::string args = "--threads 2 train " + test::source_dir() + "/sample/stories260K" +
                           " --data " + dir / "moby.txt" + " -o " + dir / "a.h5" +
                           " --rank 8 --batch 4 --seq 512 --steps 1";
  const auto dry = test::run_temper(args + " --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(test::run_shell("test -e " + dir / "a.h5").exit_code, 0) << "--dry-run wrote the adapter";
  // stories260K: 5 layers, d_model 64, 8 heads and 4 kv heads of 8, d_ff 172. Per layer and
  // rank: q 64+64, k 64+32, v 64+32, o 64+64, gate 64+172, up 64+172, down 172+64.
  const int64_t per_rank = 128 + 96 + 96 + 128 + 236 + 236 + 236;
  EXPECT_NE(dry.out.find("trainable parameters: " + std::to_string(5 * 8 * per_rank) + "\n"),
            std::string::npos) << dry.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dry.out, m, std::regex("estimated peak RSS: ([0-9.]+) (KiB|MiB|GiB)")))
      << dry.out;
  const double unit = m[2] == "KiB" ? 1024.0 : m[2] == "MiB" ? 1048576.0 : 1073741824.0;
  const double estimate = std::stod(m[1]) * unit;
  ASSERT_TRUE(std::regex_search(dry.out, m, std::regex("estimated time per step: ([0-9.e+-]+) s")))
      << dry.out;
  EXPECT_GT(std::stod(m[1]), 0.0);

  const auto run = test::run_shell("/usr/bin/time -f 'maxrss_kb %M' " + test::build_dir() +
                                   "/temper " + args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(std::regex_search(run.err, m, std::regex("maxrss_kb ([0-9]+)"))) << run.err;
  const double measured = std::stod(m[1]) * 1024;
  std::printf("peak RSS: estimated %.1f MiB, measured %.1f MiB (ratio %.3f)\n",
              estimate / 1048576, measured / 1048576, estimate / measured);
  EXPECT_LE(estimate, 1.25 * measured);
  EXPECT_GE(estimate, measured / 1.25);
  // The run's closing line reports estimated and measured tokens/s.
  EXPECT_TRUE(std::regex_search(run.err, std::regex("tokens/s: measured [0-9]+, estimated [0-9]+")))
      << run.err;
}

// --recompute never keeps every layer's activations, always recomputes them: the peak RSS of
// real runs (measured by /usr/bin/time, not by temper) differs by about what --dry-run
// estimates (factor 2 either way: allocator slack and page granularity on ~40 MiB), and the two
// runs give the same loss to the bit (the same kernels on the same inputs in the same order).
TEST(TrainDryRun, RecomputeModesDifferInMemoryNotInLoss) {
  const test::TempDir dir;
  test::write_file(dir / "moby.txt",
                   test::read_file(test::fixture("text/moby_dick.txt")).substr(0, 40000));
  const std::string args = "--threads 2 train " + test::source_dir() + "/sample/stories260K" +
                           " --data " + dir / "moby.txt" + " --rank 8 --batch 4 --seq 512 --steps 2 --json";
  double estimate[2], measured[2];
  std::string loss[2];
  const char* modes[2] = {"always", "never"};
  for (int i = 0; i < 2; ++i) {
    const std::string mode_args = args + " --recompute " + modes[i];
    const auto dry = test::run_temper(mode_args + " -o " + dir / "dry.h5 --dry-run");
    ASSERT_EQ(dry.exit_code, 0) << dry.err;
    const Json d = Json::parse(dry.out);
    EXPECT_EQ(d["recompute"], modes[i]) << dry.out;
    estimate[i] = d["estimated_peak_rss_bytes"].get<double>();
    const auto run = test::run_shell("/usr/bin/time -f 'maxrss_kb %M' " + test::build_dir() + "/temper " +
                                     mode_args + " -o " + dir / (std::string(modes[i]) + ".h5"));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(run.err, m, std::regex("maxrss_kb ([0-9]+)"))) << run.err;
    measured[i] = std::stod(m[1]) * 1024;
    ASSERT_TRUE(std::regex_search(run.out, m, std::regex("\"loss\":([-0-9.e+]+),.*\n.*\"loss\":([-0-9.e+]+)")))
        << run.out;
    loss[i] = m[1].str() + " " + m[2].str();
    EXPECT_NE(run.out.find(std::string("\"recompute\":\"") + modes[i] + "\""), std::string::npos) << run.out;
  }
  const double est = estimate[1] - estimate[0], meas = measured[1] - measured[0];
  std::printf("kept activations: estimated +%.1f MiB, measured +%.1f MiB\n", est / 1048576, meas / 1048576);
  EXPECT_GT(est, 0.0);
  EXPECT_GE(meas, est / 2);
  EXPECT_LE(meas, est * 2);
  EXPECT_EQ(loss[0], loss[1]);
}

}  // namespace
}  // namespace temper
