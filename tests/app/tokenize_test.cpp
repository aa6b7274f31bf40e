// `temper tokenize` against independent tokenizers: @lenml/tokenizers (a JavaScript
// transformers.js fork) for stories260K's and Llama 3.2's tokenizer.json, python sentencepiece
// for the GGUF (llama.cpp semantics, which agree with SentencePiece on these texts). The ids
// must match exactly; pieces must reach the terminal escaped.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/file.h"
#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {
using namespace test;

const std::string kStories = "model/stories260K-hf-f32";

Json fixture_json(const std::string& rel) { return parse_json(read_text_file(fixture(rel)), rel); }

// ids of `text` (written to a file, so any byte gets through the shell) from `tokenize --json`.
std::vector<int32_t> tokenize_ids(const std::string& model, const std::string& text, const std::string& flags) {
  TempDir d;
  write_file(d / "t.txt", text);
  const RunResult r = run_temper("tokenize " + model + " --file " + (d / "t.txt") + " --json " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["n_tokens"].get<size_t>(), j["ids"].size());
  EXPECT_EQ(j["pieces"].size(), j["ids"].size());
  return j["ids"].get<std::vector<int32_t>>();
}

// lenml parses special-token text (<s>, </s>) as the token, hence --special. `only`: the
// texts to check by their start (all when empty): loading Llama 3's 17 MB tokenizer.json takes
// over a second of CPU, so that one is checked on a few texts and only with its BOS.
void check_against_lenml(const std::string& model, const std::string& reference_rel, size_t min_cases,
                         const std::vector<std::string>& only = {}) {
  size_t n = 0;
  for (const Json& c : fixture_json(reference_rel)) {
    const std::string text = c.at("text").get<std::string>();
    if (!only.empty() && std::none_of(only.begin(), only.end(), [&](const std::string& p) { return text.starts_with(p); }))
      continue;
    EXPECT_EQ(tokenize_ids(model, text, "--special"), c.at("ids_with_special_tokens").get<std::vector<int32_t>>())
        << model << ": '" << text.substr(0, 40) << "'";
    if (only.empty())
      EXPECT_EQ(tokenize_ids(model, text, "--special --no-bos"), c.at("ids").get<std::vector<int32_t>>())
          << model << " --no-bos: '" << text.substr(0, 40) << "'";
    ++n;
  }
  EXPECT_GE(n, min_cases);
}

TEST(Tokenize, HfFolderMatchesLenml) {
  check_against_lenml(fixture(kStories), "model/reference/tokenizer_json_encodings.lenml.json", 22);
}

// A folder with tokenizer files only (no config.json, no weights): Llama 3.2's real tokenizer,
// on emoji, whitespace runs and 20,000 characters of Moby Dick (4,975 tokens, with accents and
// dashes).
TEST(Tokenize, TokenizerOnlyFolderMatchesLenml) {
  check_against_lenml(fixture("tokenizers/llama3_2"), "tokenizers/reference_encodings/llama3_2.lenml.json", 3,
                      {"🦙 llamas", "a  b   c\t\td", "CHAPTER 1. L"});
}

// --special reads "<|eot_id|>" as the added token tokenizer.json lists; without it the same
// characters are plain text (several tokens that decode back to it).
TEST(Tokenize, SpecialTokenTextOnlyWithSpecial) {
  const std::string dir = fixture("tokenizers/llama3_2");
  int32_t eot = -1;
  const Json tokenizer_json = fixture_json("tokenizers/llama3_2/tokenizer.json");
  for (const Json& t : tokenizer_json["added_tokens"])
    if (t["content"] == "<|eot_id|>") eot = t["id"].get<int32_t>();
  ASSERT_GE(eot, 0);
  EXPECT_EQ(tokenize_ids(dir, "<|eot_id|>", "--special --no-bos"), std::vector<int32_t>{eot});
  const std::vector<int32_t> plain = tokenize_ids(dir, "<|eot_id|>", "--no-bos");
  EXPECT_GT(plain.size(), 1u);
  for (int32_t id : plain) EXPECT_NE(id, eot);
}

// The GGUF's tokenizer (llama.cpp semantics) and the checkpoint's, against python
// sentencepiece on tok512.model. Texts with leading, trailing or doubled spaces are left out:
// SentencePiece's remove_extra_whitespaces drops them, llama.cpp and HF keep them.
TEST(Tokenize, GgufAndCheckpointMatchSentencePiece) {
  TempDir d;
  ASSERT_EQ(run_temper("quantize " + fixture(kStories) + " -t F32 -o " + (d / "m.gguf")).exit_code, 0);
  ASSERT_EQ(run_temper("convert " + fixture(kStories) + " -o " + (d / "m.h5")).exit_code, 0);
  int n = 0;
  const Json cases = fixture_json("model/reference/tokenizer_cases.json");
  for (const Json& c : cases["cases"]) {
    const std::string text = c.at("text").get<std::string>();
    if (text.empty() || text.front() == ' ' || text.back() == ' ' || text.find("  ") != std::string::npos) continue;
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenize_ids(d / "m.gguf", text, "--no-bos"), want) << "gguf: '" << text << "'";
    EXPECT_EQ(tokenize_ids(d / "m.h5", text, "--no-bos"), want) << "h5: '" << text << "'";
    ++n;
  }
  EXPECT_GE(n, 6);
  // With BOS: the model's own BOS id (1) first.
  const auto with_bos = tokenize_ids(d / "m.gguf", "Once upon a time", "");
  EXPECT_EQ(with_bos, (std::vector<int32_t>{1, 403, 407, 261, 378}));  // greedy_once_upon_a_time.json
}

// Control bytes, a newline and an invalid UTF-8 byte come out escaped in every output form.
TEST(Tokenize, PiecesAreEscaped) {
  TempDir d;
  write_file(d / "t.txt", std::string("a\x01\x1b[31mb\nc\xff"));
  for (const char* flags : {"", "--pieces", "--json"}) {
    const RunResult r = run_temper("tokenize " + fixture(kStories) + " --file " + (d / "t.txt") + " " + flags);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (char c : r.out) {
      const unsigned char u = static_cast<unsigned char>(c);
      EXPECT_TRUE(u == '\n' || (u >= 0x20 && u != 0x7f && u < 0x80)) << flags << ": raw byte " << int(u) << " in\n" << r.out;
    }
    EXPECT_NE(r.out.find("\\x1b"), std::string::npos) << flags << ": " << r.out;
    EXPECT_NE(r.out.find("\\n"), std::string::npos) << flags << ": " << r.out;
  }
  const RunResult ids = run_temper("tokenize " + fixture(kStories) + " --text 'Once upon a time' --ids");
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_EQ(ids.out, "[1, 403, 407, 261, 378]\n");
}

TEST(Tokenize, UsageErrors) {
  EXPECT_EQ(run_temper("tokenize " + fixture(kStories)).exit_code, 2);  // neither --text nor --file
  EXPECT_EQ(run_temper("tokenize " + fixture(kStories) + " --text a --file /etc/hostname").exit_code, 2);
  const RunResult r = run_temper("tokenize /nonexistent/model --text a");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace temper
