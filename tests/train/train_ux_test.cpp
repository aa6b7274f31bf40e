// `temper train` output for people: the loss-curve page beside the adapter (well-formed XHTML;
// one training point per step and one validation marker per validation, with the values the
// --json lines report), and the progress bar (loss, tokens/s, ETA) drawn on a terminal only:
// a pipe gets no carriage returns.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {

std::string args(const test::TempDir& dir) {
  test::write_file(dir / "moby.txt",
                   test::read_file(test::fixture("text/moby_dick.txt")).substr(0, 20000));
  return "--threads 2 train " + test::source_dir() + "/sample/stories260K --data " +
         dir / "moby.txt" + " -o " + dir / "run.h5" +
         " --rank 4 --lr 3e-3 --steps 6 --batch 2 --seq 64 --val-split 0.2 --val-every 3";
}

TEST(TrainUx, LossCurvePageHoldsEveryStepAndValidation) {
  const test::TempDir dir;
  const auto r = test::run_temper(args(dir) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<double> val;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const Json j = parse_json(line, "--json");
    if (j.contains("val_loss")) val.push_back(j["val_loss"].get<double>());
  }
  ASSERT_EQ(val.size(), 2u);
  // Parsed by Python's XML parser (an independent reader): the training polyline's points
  // and the validation markers' titles.
  const auto py = test::run_shell(
      std::string(TEMPER_PYTHON) +
      " -c \"import sys, xml.dom.minidom as m; d=m.parse(sys.argv[1]); "
      "p=[e for e in d.getElementsByTagName('polyline') if e.getAttribute('class')=='train'][0]; "
      "print(len(p.getAttribute('points').split())); "
      "[print(c.getElementsByTagName('title')[0].firstChild.data) for c in "
      "d.getElementsByTagName('circle') if c.getAttribute('class')=='val']\" " + dir / "run.loss.html");
  ASSERT_EQ(py.exit_code, 0) << py.err;
  std::istringstream out(py.out);
  std::string n, t1, t2;
  std::getline(out, n);
  std::getline(out, t1);
  std::getline(out, t2);
  EXPECT_EQ(n, "6") << py.out;
  EXPECT_EQ(t1.rfind("step 3: validation loss ", 0), 0u) << py.out;
  EXPECT_EQ(t2.rfind("step 6: validation loss ", 0), 0u) << py.out;
  EXPECT_NEAR(std::stod(t1.substr(24)), val[0], 1e-5 * val[0]);
  EXPECT_NEAR(std::stod(t2.substr(24)), val[1], 1e-5 * val[1]);
}

TEST(TrainUx, ProgressBarOnATerminalOnly) {
  const test::TempDir dir;
  const std::string a = args(dir);
  auto r = test::run_temper(a + " --force");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "a progress bar was drawn into a pipe";
  EXPECT_NE(r.err.find("tokens/s: measured"), std::string::npos) << r.err;
  if (test::run_shell("command -v script").exit_code != 0) GTEST_SKIP() << "no script(1) for a pty";
  // script(1) runs temper on a pseudo-terminal; its output (the terminal's) comes back here.
  r = test::run_shell("script -qec '" + test::build_dir() + "/temper " + a + " --force' /dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find('\r'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train loss "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" val "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" tok/s ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ETA"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6/6"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace temper
