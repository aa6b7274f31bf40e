// Bad input to eval / compare / generate: every error names the file (and line) at fault and
// exits non-zero; plus the answer extraction rules of the exact-match tasks.
#include <gtest/gtest.h>

#include <chrono>

#include "tasks.h"
#include "util/test_util.h"

namespace temper {
namespace {

const std::string kBase = test::fixture("model/stories260K-hf-f32");
const std::string kText = test::fixture("text/tinystories_sample.txt");

void expect_error(const std::string& args, std::initializer_list<std::string> needles) {
  const test::RunResult r = test::run_temper(args);
  EXPECT_NE(r.exit_code, 0) << args;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
}

TEST(VerifyBadInput, MissingTextFile) {
  test::TempDir d;
  expect_error("eval " + kBase + " --text " + (d / "nope.txt"), {d / "nope.txt", "no such file"});
  expect_error("compare " + kBase + " " + kBase + " --text " + (d / "nope.txt"), {d / "nope.txt", "no such file"});
}

TEST(VerifyBadInput, MalformedTasksLineIsNamed) {
  test::TempDir d;
  const std::string ok = R"({"question": "2+2?", "answer": "4"})";
  test::write_file(d / "a.jsonl", ok + "\n" + ok + "\n{\"question\": \"x\", \"answer\": \n");
  expect_error("compare " + kBase + " " + kBase + " --text " + kText + " --tasks " + (d / "a.jsonl"),
               {d / "a.jsonl" + ":3", "not a valid JSON line"});
  test::write_file(d / "b.jsonl", ok + "\n" + R"({"question": "q", "choices": ["a", "b"], "answer": 2})" + "\n");
  expect_error("compare " + kBase + " " + kBase + " --text " + kText + " --tasks " + (d / "b.jsonl"),
               {d / "b.jsonl" + ":2", "index"});
  test::write_file(d / "c.jsonl", R"({"answer": "4"})" "\n");
  expect_error("compare " + kBase + " " + kBase + " --text " + kText + " --tasks " + (d / "c.jsonl"),
               {d / "c.jsonl" + ":1", "question"});
}

TEST(VerifyBadInput, CandidateThatCannotBeLoadedIsNamed) {
  test::TempDir d;
  test::write_file(d / "broken.gguf", std::string("GGUF\x03\0\0\0garbage", 15));
  expect_error("compare " + kBase + " " + (d / "broken.gguf") + " --text " + kText + " --ctx 64",
               {"cannot load model " + (d / "broken.gguf")});
  expect_error("compare " + kBase + " " + (d / "missing.gguf") + " --text " + kText,
               {"cannot load model " + (d / "missing.gguf"), "no such file"});
  expect_error("eval " + (d / "missing") + " --text " + kText, {"cannot load model " + (d / "missing")});
  expect_error("generate " + (d / "broken.gguf") + " --prompt hi", {"cannot load model " + (d / "broken.gguf")});
}

TEST(VerifyBadInput, BadWindowOptions) {
  expect_error("eval " + kBase + " --text " + kText + " --ctx 128 --stride 128", {"--stride 128", "127"});
  expect_error("eval " + kBase + " --text " + kText + " --ctx 1", {"--ctx 1"});
  expect_error("compare " + kBase + " --text " + kText, {"at least one candidate"});
}

// Issue 15: a 100 kB choice made compare run for minutes on half a gigabyte without a word;
// a question longer than the model's context is now refused at once, naming the line.
TEST(VerifyBadInput, TaskLongerThanTheContextIsRefused) {
  test::TempDir d;
  std::string long_choice;
  for (int i = 0; i < 20000; ++i) long_choice += "a ";
  test::write_file(d / "t.jsonl", R"({"question": "2+2?", "choices": ["4", "5"], "answer": 0})" "\n"
                                  R"({"question": "Which?", "choices": [")" + long_choice + R"(", "b"], "answer": 0})" "\n");
  test::write_file(d / "short.txt", "Once upon a time, there was a little girl named Lily. She loved to play outside.");
  const auto t0 = std::chrono::steady_clock::now();
  expect_error("compare " + kBase + " " + kBase + " --text " + (d / "short.txt") + " --ctx 16 --tasks " + (d / "t.jsonl"),
               {d / "t.jsonl" + ":2", "context of 512"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

// --temp nan was refused as "must not be negative". A bad option value is a usage error (exit 2).
TEST(VerifyBadInput, NanTemperatureIsCalledWhatItIs) {
  const test::RunResult r = test::run_temper("generate " + kBase + " --prompt hi --temp nan");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--temp"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nan: must be a number"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("negative"), std::string::npos) << r.err;
}

// SIGINT and SIGTERM ended temper with no word (rc -2/-15 to a Python caller). Now: one line
// saying so, and 128 + the signal number, as shells report it.
TEST(VerifyBadInput, InterruptIsReported) {
  for (const auto& [sig, rc] : {std::pair{"SIGINT", 130}, std::pair{"SIGTERM", 143}}) {
    const std::string script = std::string(TEMPER_PYTHON) +
                               " -c 'import signal, subprocess, sys, time\n"
                               "p = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE)\n"
                               "time.sleep(1.5)\n"
                               "p.send_signal(signal." + sig + ")\n"
                               "err = p.communicate(timeout=60)[1].decode()\n"
                               "print(p.returncode)\n"
                               "sys.stderr.write(err)' " +
                               test::build_dir() + "/temper eval " + kBase + " --text " +
                               test::fixture("text/moby_dick.txt") + " --ctx 128 --stride 1";
    const test::RunResult r = test::run_shell(script);
    EXPECT_EQ(r.out, std::to_string(rc) + "\n") << sig << ": " << r.err;
    EXPECT_NE(r.err.find(std::string("interrupted (") + sig + "): nothing written"), std::string::npos) << r.err;
  }
}

TEST(VerifyTasksUnit, AnswerExtraction) {
  using verify::canonical_number;
  using verify::extract_answer;
  EXPECT_EQ(canonical_number("1,000.50"), "1000.5");
  EXPECT_EQ(canonical_number("+007"), "7");
  EXPECT_EQ(canonical_number("$42."), "42");
  EXPECT_EQ(canonical_number("-0.0"), "0");
  EXPECT_EQ(canonical_number("forty"), "");
  EXPECT_EQ(extract_answer("She has 3 apples, then 5 more, so 8 in total.", true), "8");
  EXPECT_EQ(extract_answer("3 + 5 = 8\n#### 8\nThen 12 more words", true), "8");
  EXPECT_EQ(extract_answer("no numbers here", true), "");
  EXPECT_EQ(extract_answer("Let me think.\nParis.\n", false), "paris");
  EXPECT_EQ(extract_answer("blah #### Blue Whale!\nmore", false), "blue whale");
}

TEST(VerifyTasksUnit, ExpectedAnswersAreNormalized) {
  test::TempDir d;
  test::write_file(d / "t.jsonl", R"({"question": "q1", "answer": "He pays 2*3=6.\n#### 1,234"})" "\n"
                                  R"({"question": "q2", "answer": 7})" "\n"
                                  R"({"question": "q3", "answer": "Paris."})" "\n");
  const auto t = verify::load_tasks(d / "t.jsonl");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].answer, "1234");
  EXPECT_TRUE(t[0].numeric);
  EXPECT_EQ(t[1].answer, "7");
  EXPECT_EQ(t[2].answer, "paris");
  EXPECT_FALSE(t[2].numeric);
}

}  // namespace
}  // namespace temper
