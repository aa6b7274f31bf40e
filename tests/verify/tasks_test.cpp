// compare --tasks and --html on stories260K: the f32 base and a Q4_0 candidate answer a small
// question set (5 multiple-choice questions about the TinyStories sample, 3 arithmetic
// questions for exact match); accuracies and flips are checked against a direct computation
// here (C++ API: log-likelihoods and greedy decoding), and the HTML report is parsed.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "core/file.h"
#include "core/json.h"
#include "forward/forward.h"
#include "model/open_model.h"
#include "tokenizer/tokenizer.h"
#include "util/test_util.h"

namespace temper {
namespace {

const std::string kBase = test::fixture("model/stories260K-hf-f32");
const std::string kText = test::fixture("text/tinystories_sample.txt");

struct Mc {
  std::string question;
  std::vector<std::string> choices;
  int answer;
};
// Facts of the sample; the f32 model gets all but the fourth right, the Q4_0 candidate gets
// that one right (a flip), as the direct computation below confirms.
const std::vector<Mc> kMc = {
    {"Ben loved to explore the world around", {"him", "the sky", "his dog"}, 0},
    {"Ollie lived in a river with his", {"family", "car", "book"}, 0},
    {"One day, Ollie's mom said, \"Ollie, hurry and get some fish for", {"dinner", "breakfast", "school"}, 0},
    {"Ollie swam fast to catch", {"fish", "the ball", "a bus"}, 0},
    {"The shopkeeper smiled and said, \"Of course you", {"can", "will", "are"}, 0},
};
struct Qa {
  std::string question, answer;
};
const std::vector<Qa> kQa = {{"What is 2 plus 3?", "5"}, {"Lily had 4 apples and ate 1. How many are left?", "#### 3"},
                             {"What is 10 times 10?", "100"}};
constexpr int kTaskTokens = 24;

struct Direct {
  OpenedModel om;
  std::unique_ptr<forward::Model> model;
  std::unique_ptr<Tokenizer> tok;
  explicit Direct(const std::string& path) : om(open_model(path)) {
    forward::LoadOptions o;
    o.gguf_names = om.gguf_tensor_names;
    o.embed_scale_in_weight_dtype = om.embed_scale_in_weight_dtype;
    model = forward::Model::load(*om.tensors, om.desc, o);
    tok = std::make_unique<Tokenizer>(Tokenizer::from_assets(
        om.desc.tokenizer, om.format == ModelFormat::kGguf ? TokenizerSource::kGguf : TokenizerSource::kAuto));
  }
  // Sum of log p(choice tokens | question), the choice tokenized together with the question.
  double loglik(const std::string& q, const std::string& choice) const {
    const std::vector<int32_t> ctx = tok->encode(q, true, false), full = tok->encode(q + " " + choice, true, false);
    size_t n = 0;
    while (n < ctx.size() && ctx[n] == full[n]) ++n;
    double lp = 0;
    forward::Session s(*model, int(full.size()));
    for (size_t p = 0; p + 1 < full.size(); ++p) {  // one token at a time through the KV cache
      const std::vector<float> row = s.eval(std::span(&full[p], 1), false);
      if (p + 1 < n) continue;
      double mx = row[0], z = 0;
      for (float v : row) mx = std::max(mx, double(v));
      for (float v : row) z += std::exp(v - mx);
      lp += row[size_t(full[p + 1])] - mx - std::log(z);
    }
    return lp;
  }
  std::string greedy(const std::string& q, int n) const {
    std::vector<int32_t> ids = tok->encode(q, true, false), out;
    forward::Session s(*model, int(ids.size()) + n);
    std::vector<float> row = s.eval(ids, false);
    for (int i = 0; i < n; ++i) {
      const int32_t id = int32_t(std::max_element(row.begin(), row.end()) - row.begin());
      if (tok->is_eog(id)) break;
      out.push_back(id);
      row = s.eval(std::span(&out.back(), 1), false);
    }
    return tok->decode(out);
  }
  std::vector<bool> correct() const {
    std::vector<bool> ok;
    for (const Mc& m : kMc) {
      int best = 0;
      for (size_t c = 1; c < m.choices.size(); ++c)
        if (loglik(m.question, m.choices[c]) > loglik(m.question, m.choices[size_t(best)])) best = int(c);
      ok.push_back(best == m.answer);
    }
    for (const Qa& q : kQa) {
      const std::string out = greedy(q.question, kTaskTokens);
      std::string last;
      static const std::regex num(R"(\d+)");
      for (auto it = std::sregex_iterator(out.begin(), out.end(), num); it != std::sregex_iterator(); ++it) last = it->str();
      ok.push_back(last == std::regex_replace(q.answer, std::regex("#### "), ""));
    }
    return ok;
  }
};

TEST(VerifyTasks, AccuracyFlipsAndHtmlReport) {
  test::TempDir dir;
  const std::string q4 = dir / "stories260K-Q4_0.gguf";
  test::RunResult r = test::run_temper("quantize " + kBase + " -o " + q4 + " -t Q4_0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string jsonl;
  for (const Mc& m : kMc) jsonl += Json{{"question", m.question}, {"choices", m.choices}, {"answer", m.answer}}.dump() + "\n";
  jsonl += "\n";  // blank lines are allowed
  for (const Qa& q : kQa) jsonl += Json{{"question", q.question}, {"answer", q.answer}}.dump() + "\n";
  test::write_file(dir / "tasks.jsonl", jsonl);

  r = test::run_temper("compare " + kBase + " " + q4 + " --text " + kText + " --ctx 128 --tasks " + (dir / "tasks.jsonl") +
                       " --task-tokens " + std::to_string(kTaskTokens) + " --html " + (dir / "report.html") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json got = parse_json(r.out, "compare --json");

  const std::vector<bool> base_ok = Direct(kBase).correct(), cand_ok = Direct(q4).correct();
  const size_t n = kMc.size() + kQa.size();
  auto count = [](const std::vector<bool>& v) { return size_t(std::count(v.begin(), v.end(), true)); };
  const Json& bt = got["base"]["tasks"];
  const Json& ct = got["candidates"][0]["tasks"];
  ASSERT_EQ(bt["n"].get<size_t>(), n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(bt["is_correct"][i].get<bool>(), base_ok[i]) << "base, question " << i;
    EXPECT_EQ(ct["is_correct"][i].get<bool>(), cand_ok[i]) << "candidate, question " << i;
  }
  EXPECT_EQ(bt["correct"].get<size_t>(), count(base_ok));
  EXPECT_EQ(ct["correct"].get<size_t>(), count(cand_ok));
  EXPECT_DOUBLE_EQ(bt["accuracy"].get<double>(), double(count(base_ok)) / double(n));
  std::vector<size_t> flips, got_flips;
  for (size_t i = 0; i < n; ++i)
    if (base_ok[i] != cand_ok[i]) flips.push_back(i);
  for (const Json& f : got["candidates"][0]["flips"]) {
    got_flips.push_back(f["index"].get<size_t>());
    // JSONL line numbers: MC on lines 1-5, a blank line 6, exact match on lines 7-9.
    const size_t i = f["index"].get<size_t>();
    EXPECT_EQ(f["line"].get<size_t>(), i < kMc.size() ? i + 1 : i + 2);
  }
  EXPECT_EQ(got_flips, flips);
  std::printf("tasks: base %zu/%zu, Q4_0 %zu/%zu, %zu flips\n", count(base_ok), n, count(cand_ok), n, flips.size());
  EXPECT_FALSE(flips.empty()) << "the question set is meant to contain a flip (question 4)";

  // The HTML report: well-formed XML, two charts each with one labelled point per candidate; the
  // base is the PPL-ratio chart's reference line at 1, below the point exactly when the ratio is > 1.
  r = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/tests/verify/check_report.py " +
                      (dir / "report.html"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json html = parse_json(r.out, "check_report.py");
  ASSERT_EQ(html["svgs"].size(), 2u);
  for (const Json& svg : html["svgs"]) {
    ASSERT_EQ(svg.size(), 1u);
    EXPECT_EQ(svg[0]["label"], "Q4_0");
  }
  EXPECT_TRUE(html["refs"][0].is_null());
  ASSERT_FALSE(html["refs"][1].is_null());
  char bpw[32];
  std::snprintf(bpw, sizeof bpw, "%.1f", got["base"]["bits_per_weight"].get<double>());
  EXPECT_EQ(html["refs"][1]["label"], std::string("base (") + bpw + " bits per weight)");
  const double ratio = got["candidates"][0]["ppl_ratio"].get<double>();
  EXPECT_EQ(html["svgs"][1][0]["cy"].get<double>() < html["refs"][1]["y"].get<double>(), ratio > 1) << "ratio " << ratio;
  EXPECT_EQ(html["circles"].get<int>(), 2);
  // Provenance: each file's SHA-256 as sha256sum prints it; a folder's from its sha256sum listing.
  auto sha256sum = [](const std::string& cmd) {
    const test::RunResult s = test::run_shell(cmd);
    EXPECT_EQ(s.exit_code, 0) << s.err;
    return s.out.substr(0, 64);
  };
  const std::string base_sha = sha256sum("cd " + kBase + " && LC_ALL=C sha256sum * | sha256sum");
  EXPECT_EQ(got["base"]["sha256"], base_sha);
  EXPECT_EQ(html["hashes"][kBase], base_sha);
  EXPECT_EQ(html["hashes"][q4], sha256sum("sha256sum " + q4));
  EXPECT_EQ(got["text_sha256"], sha256sum("sha256sum " + kText));
  EXPECT_EQ(html["scripts"].get<int>(), 0);
  EXPECT_GE(html["tables"].get<int>(), 1);
}

}  // namespace
}  // namespace temper
