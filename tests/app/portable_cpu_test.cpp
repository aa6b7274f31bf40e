// The default build runs on any x86-64 with AVX2 (issue 12 item 3), checked on CPUs this machine
// is not: QEMU's user-mode emulator runs the very binary the build made with the CPUID of an
// Intel Haswell (AVX2/FMA/F16C, no AVX-512, no AVX-512-BF16) and of a Nehalem (no AVX at all).
// On Haswell every command must work and choose its no-AVX-512 paths by itself; on Nehalem
// temper must refuse in one clear sentence instead of dying of SIGILL. Skipped for a
// -DTEMPER_NATIVE=ON build (made for the building CPU only), and where qemu-user is missing
// outside CI (scripts/setup.sh installs it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include <sstream>

#include "core/json.h"
#include "train/story_lines.h"
#include "util/test_util.h"

namespace temper {
namespace {
using namespace test;

std::string model_dir() { return source_dir() + "/sample/stories260K"; }
std::string sample_text() { return fixture("text/tinystories_sample.txt"); }

// train --json prints one line per step; the last one's.
Json last_step(const std::string& out) {
  std::istringstream lines(out);
  std::string line, last;
  while (std::getline(lines, line))
    if (line.find("\"step\"") != std::string::npos) last = line;
  return Json::parse(last);
}

// QEMU names the emulated CPU; its warnings about features TCG cannot emulate (TSX, PCID)
// go to stderr and are no concern here.
RunResult run_on(const std::string& cpu, const std::string& args) {
  return run_shell("qemu-x86_64 -cpu " + cpu + " " + build_dir() + "/temper " + args);
}

#define REQUIRE_PORTABLE_BUILD_AND_QEMU()                                                      \
  do {                                                                                         \
    if (TEMPER_NATIVE_BUILD) GTEST_SKIP() << "-DTEMPER_NATIVE=ON build: runs only on this CPU"; \
    if (run_shell("command -v qemu-x86_64 >/dev/null").exit_code != 0) {                      \
      if (std::getenv("CI")) FAIL() << "qemu-x86_64 is missing in CI (scripts/setup.sh installs qemu-user)"; \
      GTEST_SKIP() << "qemu-user not installed: other CPUs not tested";                        \
    }                                                                                          \
  } while (0)

TEST(PortableCpu, OlderCpuGetsAClearRefusal) {
  REQUIRE_PORTABLE_BUILD_AND_QEMU();
  const RunResult r = run_on("Nehalem", "--version");
  EXPECT_EQ(r.exit_code, 2) << r.err;  // not 132 (SIGILL)
  EXPECT_NE(r.err.find("this CPU lacks AVX, AVX2, FMA, F16C"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("-DTEMPER_NATIVE=ON"), std::string::npos) << r.err;
}

// The same text scored natively (AVX-512 paths on a CPU that has them) and on the emulated
// Haswell (AVX2 paths, OpenBLAS's Haswell sgemm). Both are f32 with f32 accumulation; they
// differ only in summation order, a relative error per logit of order K·u (K ≤ 768 here,
// u = 2^-24: ~5e-5 at worst, far less in practice), so perplexity agrees to 1e-4 relative.
TEST(PortableCpu, HaswellRunsEveryStage) {
  REQUIRE_PORTABLE_BUILD_AND_QEMU();
  TempDir d;
  // quantize: the quantizers have no run-time paths, so the bytes must be the same.
  ASSERT_EQ(run_temper("quantize " + model_dir() + " -t Q4_K_M -q -o " + (d / "native.gguf")).exit_code, 0);
  const RunResult q = run_on("Haswell-v4", "quantize " + model_dir() + " -t Q4_K_M -q -o " + (d / "haswell.gguf"));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(read_file(d / "native.gguf"), read_file(d / "haswell.gguf"));

  for (const std::string& model : {model_dir(), d / "native.gguf"}) {
    const std::string eval = "eval " + model + " --text " + sample_text() + " --ctx 128 --json -q";
    const RunResult native = run_temper(eval);
    const RunResult haswell = run_on("Haswell-v4", eval);
    ASSERT_EQ(native.exit_code, 0) << native.err;
    ASSERT_EQ(haswell.exit_code, 0) << haswell.err;
    const double a = Json::parse(native.out)["ppl"].get<double>();
    const double b = Json::parse(haswell.out)["ppl"].get<double>();
    EXPECT_NEAR(b / a, 1.0, 1e-4) << model << ": native " << a << ", Haswell " << b;
  }

  // Decode of a short prompt runs the gemv kernels only; TEMPER_GEMV_PATH=avx2 makes this CPU
  // take the kernels the Haswell picks by itself, so greedy tokens are identical.
  const std::string gen = "generate " + (d / "native.gguf") + " -p 'Once upon a time' -n 24 --temp 0 -q";
  const RunResult native = run_shell("TEMPER_GEMV_PATH=avx2 " + build_dir() + "/temper " + gen);
  const RunResult haswell = run_on("Haswell-v4", gen);
  ASSERT_EQ(haswell.exit_code, 0) << haswell.err;
  EXPECT_EQ(native.out, haswell.out);
  // AVX-512 forced on a CPU without it is an error, not a crash.
  const RunResult forced = run_shell("TEMPER_GEMV_PATH=avx512 qemu-x86_64 -cpu Haswell-v4 " + build_dir() + "/temper " + gen);
  EXPECT_EQ(forced.exit_code, 1) << forced.err;
}

// train --precision auto picks bf16 only where the CPU has AVX-512-BF16 or AMX; the Haswell
// trains in f32, and two steps of it give a loss close to a forced-f32 run here.
TEST(PortableCpu, HaswellTrainsInF32) {
  REQUIRE_PORTABLE_BUILD_AND_QEMU();
  TempDir d;
  write_file(d / "data.jsonl", story_jsonl(4));
  const std::string args = "train " + model_dir() + " --data " + (d / "data.jsonl") +
                           " --steps 2 --seq 32 --rank 2 --seed 1 --json -o ";
  const RunResult haswell = run_on("Haswell-v4", args + (d / "h.safetensors"));
  ASSERT_EQ(haswell.exit_code, 0) << haswell.err;
  const RunResult native = run_temper(args + (d / "n.safetensors") + " --precision f32");
  ASSERT_EQ(native.exit_code, 0) << native.err;
  const Json h = last_step(haswell.out), n = last_step(native.out);
  EXPECT_EQ(h["precision"], "f32") << haswell.out;
  EXPECT_NEAR(h["loss"].get<double>(), n["loss"].get<double>(), 1e-4 * n["loss"].get<double>());
}

}  // namespace
}  // namespace temper
