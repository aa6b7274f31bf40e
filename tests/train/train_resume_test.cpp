// `temper train` checkpoints (--save-every, --resume): a run killed with SIGKILL at a random
// step and resumed from its last checkpoint writes an adapter bit-identical to an
// uninterrupted run's; a checkpoint of another run (hyper-parameter, data, base weights) is
// refused naming the difference; a checkpoint write that fails (file size limit, standing in
// for a full disk) leaves the previous checkpoint as it was; a NaN loss stops the run keeping
// the last good checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "core/json.h"
#include "train/story_lines.h"
#include "util/test_util.h"

namespace temper {
namespace {

std::string model_dir() { return test::source_dir() + "/sample/stories260K"; }

std::string write_data(const test::TempDir& dir) {
  test::write_file(dir / "data.jsonl", test::story_jsonl(7));
  return dir / "data.jsonl";
}

// Odd example count (7) against 2 per step, so the data position wraps mid-batch; cosine with
// warm-up, so a resume at the wrong step changes the learning rate.
std::string train_args(const std::string& model, const std::string& data, const std::string& out,
                       int steps) {
  return "--threads 2 train " + model + " --data " + data + " -o " + out + " --steps " +
         std::to_string(steps) + " --seed 3 --rank 4 --alpha 8 --lr 5e-3 --warmup 4"
         " --schedule cosine --weight-decay 0.01 --batch 2 --seq 24 --json";
}

// `args` with the value after `flag` replaced by `value`.
std::string with(std::string args, const std::string& flag, const std::string& value) {
  const size_t at = args.find(flag + " ") + flag.size() + 1;
  return args.replace(at, args.find(' ', at) - at, value);
}

// Exit 0 when the two files' /adapters hold the same names and the same tensor bytes.
bool same_adapters(const std::string& a, const std::string& b) {
  return test::run_shell(
             std::string(TEMPER_PYTHON) +
             " -c \"import h5py,sys; a=h5py.File(sys.argv[1])['adapters']; b=h5py.File(sys.argv[2])"
             "['adapters']; sys.exit(0 if list(a)==list(b) and len(a)>0 and all(a[k][()].tobytes()=="
             "b[k][()].tobytes() for k in a) else 1)\" " + a + " " + b)
             .exit_code == 0;
}

TEST(TrainResume, KilledAtARandomStepResumesBitIdentical) {
  const test::TempDir dir;
  const std::string data = write_data(dir);
  constexpr int kSteps = 60;
  auto r = test::run_temper(train_args(model_dir(), data, dir / "full.h5", kSteps));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Kill the second run with SIGKILL once it has logged a random number of steps.
  std::random_device rd;
  const int kill_after = 2 + int(rd() % 30);
  const std::string run = test::build_dir() + "/temper " +
                          train_args(model_dir(), data, dir / "killed.h5", kSteps) +
                          " --save-every 1 > " + dir / "log" + " 2>/dev/null";
  // The log exists before the loop first reads it (else the loop could end at once and the
  // kill land before the first checkpoint).
  const auto k = test::run_shell(
      ": > " + dir / "log" + "; " + run + " & pid=$!; while [ $(wc -l < " + dir / "log" + ") -lt " +
      std::to_string(kill_after) + " ] && kill -0 $pid 2>/dev/null; do sleep 0.005; done; "
      "kill -9 $pid; wait $pid; echo $?");
  ASSERT_EQ(k.out, "137\n") << "the run was not killed by SIGKILL (finished first?)";
  ASSERT_NE(test::run_shell("test -e " + dir / "killed.h5").exit_code, 0);
  const std::string log = test::read_file(dir / "log");
  const int logged = int(std::count(log.begin(), log.end(), '\n'));
  std::printf("killed after %d logged steps (asked for %d)\n", logged, kill_after);
  ASSERT_LT(logged, kSteps);
  ASSERT_GE(logged, kill_after);

  r = test::run_temper(train_args(model_dir(), data, dir / "resumed.h5", kSteps) +
                       " --save-every 1 --resume " + dir / "killed.ckpt.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The resumed run logs only the steps after the checkpoint, ending at the last.
  const std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  EXPECT_EQ(parse_json(last, "--json")["step"].get<int>(), kSteps);
  EXPECT_TRUE(same_adapters(dir / "full.h5", dir / "resumed.h5"))
      << "resumed adapter differs from the uninterrupted run's";
  // Sanity: the check can fail (an adapter from fewer steps differs).
  r = test::run_temper(train_args(model_dir(), data, dir / "short.h5", kSteps - 1));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(same_adapters(dir / "full.h5", dir / "short.h5"));
}

TEST(TrainResume, ACheckpointOfAnotherRunIsRefusedNamingTheDifference) {
  const test::TempDir dir;
  const std::string data = write_data(dir);
  auto r = test::run_temper(train_args(model_dir(), data, dir / "a.h5", 6) + " --save-every 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ckpt = dir / "a.ckpt.h5";
  // A copy of the base with one weight byte changed (the same config.json).
  ASSERT_EQ(test::run_shell("cp -r " + model_dir() + " " + dir / "other && " + TEMPER_PYTHON +
                            " -c \"import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); "
                            "b[-3]^=1; open(p,'wb').write(b)\" " + dir / "other/model.safetensors")
                .exit_code, 0);
  test::write_file(dir / "data2.jsonl", "{\"text\": \"A different story.\"}\n");
  const std::string same = train_args(model_dir(), data, dir / "b.h5", 6);
  struct Case {
    std::string args, expect;
  } cases[] = {
      {with(same, "--lr", "1e-3"), "--lr: checkpoint 0.005, this run 0.001"},
      {with(same, "--rank", "8"), "--rank: checkpoint 4, this run 8"},
      {with(same, "--seq", "32"), "--seq: checkpoint 24, this run 32"},
      {with(same, "--steps", "7"), "--steps: checkpoint 6, this run 7"},
      {with(same, "--data", dir / "data2.jsonl"), "training data differs"},
      {with(same, "train", dir / "other"), "base model weights differ"},
      {with(same, "train", test::fixture("model/stories260K-hf-bf16")), "base model"},
  };
  for (const Case& c : cases) {
    r = test::run_temper(c.args + " --resume " + ckpt);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find("the checkpoint is from another run: " + c.expect), std::string::npos)
        << c.args << ": " << r.err;
    EXPECT_NE(test::run_shell("test -e " + dir / "b.h5").exit_code, 0);
  }
  // An adapter file is not a checkpoint.
  r = test::run_temper(train_args(model_dir(), data, dir / "b.h5", 6) + " --resume " + dir / "a.h5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a temper training checkpoint"), std::string::npos) << r.err;
  // Resuming with the same arguments (and another output) works.
  r = test::run_temper(train_args(model_dir(), data, dir / "b.h5", 6) + " --resume " + ckpt);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// The second run may not write files larger than ~50 KB (ulimit -f; SIGXFSZ ignored so the
// write fails with EFBIG as on a full disk): its checkpoint write fails, the run stops with an
// error naming the file, and the first run's checkpoint is byte for byte as it was, with no
// temporary file left beside it.
TEST(TrainResume, AFailedCheckpointWriteLeavesThePreviousOneIntact) {
  const test::TempDir dir;
  const std::string data = write_data(dir);
  auto r = test::run_temper(train_args(model_dir(), data, dir / "a.h5", 8) + " --save-every 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string before = test::read_file(dir / "a.ckpt.h5");
  ASSERT_GT(before.size(), 100000u);
  const auto f = test::run_shell("trap '' XFSZ; ulimit -f 100; " + test::build_dir() + "/temper " +
                                 train_args(model_dir(), data, dir / "a.h5", 8) +
                                 " --force --save-every 1 --resume " + dir / "a.ckpt.h5");
  EXPECT_NE(f.exit_code, 0);
  EXPECT_NE(f.err.find("a.ckpt.h5"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("File too large"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("the previous checkpoint (step 6) is intact"), std::string::npos) << f.err;
  EXPECT_EQ(test::read_file(dir / "a.ckpt.h5"), before);
  EXPECT_EQ(test::run_shell("ls " + dir.path()).out, "a.ckpt.h5\na.h5\na.loss.html\ndata.jsonl\n");
}

// A NaN/Inf loss or gradient (here from an absurd learning rate: after step 1 every adapter
// element is ~1e30, so step 2 overflows) stops the run with a non-zero exit naming the step;
// no adapter is written and the checkpoint of the last good step (1) stays, finite.
TEST(TrainResume, ANanLossStopsAndKeepsTheLastGoodCheckpoint) {
  const test::TempDir dir;
  const std::string data = write_data(dir);
  const auto r = test::run_temper(
      with(with(train_args(model_dir(), data, dir / "a.h5", 6), "--lr", "1e30"), "--warmup", "0") +
      " --save-every 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("step 2: the "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" is NaN; stopping"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the last good checkpoint is " + dir / "a.ckpt.h5" + " at step 1"),
            std::string::npos) << r.err;
  EXPECT_NE(test::run_shell("test -e " + dir / "a.h5").exit_code, 0);
  const auto check = test::run_shell(
      std::string(TEMPER_PYTHON) +
      " -c \"import h5py,sys,numpy as np; f=h5py.File(sys.argv[1]); a=f['adapters']; "
      "print(int(f['checkpoint'].attrs['step']), all(np.isfinite(a[k][()]).all() for k in a))\" " +
      dir / "a.ckpt.h5");
  EXPECT_EQ(check.out, "1 True\n") << check.err;
}

}  // namespace
}  // namespace temper
