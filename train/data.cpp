// Plain-text and JSONL "text" readers (see data.h).
#include "train/data.h"

#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"

namespace temper::train {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Example all_trained(std::vector<int32_t> tokens) {
  Example e;
  e.trained.assign(tokens.size(), 1);
  if (!e.trained.empty()) e.trained[0] = 0;  // nothing predicts the first token
  e.tokens = std::move(tokens);
  return e;
}

}  // namespace

std::vector<Example> read_examples(const std::string& path, const Tokenizer& tok, int seq,
                                   DataStats& stats) {
  TEMPER_CHECK(seq >= 2, "--seq must be at least 2, got ", seq);
  const std::string text = read_text_file(path);
  std::vector<Example> out;
  if (ends_with(path, ".txt")) {
    // One token stream; chunks of seq tokens (a last chunk of one token predicts nothing).
    const std::vector<int32_t> ids = tok.encode(text, true, false);
    for (size_t i = 0; i + 1 < ids.size(); i += size_t(seq))
      out.push_back(all_trained({ids.begin() + i, ids.begin() + std::min(ids.size(), i + seq)}));
  } else if (ends_with(path, ".jsonl")) {
    std::istringstream in(text);
    std::string line;
    for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      Json rec;
      try {
        rec = Json::parse(line);
      } catch (const Json::exception& e) {
        fail(path, ":", line_no, ": not valid JSON (", e.what(), ")");
      }
      TEMPER_CHECK(rec.is_object() && rec.contains("text") && rec["text"].is_string(), path, ":",
                   line_no, ": a record needs a string \"text\" field (accepted fields: text)");
      std::vector<int32_t> ids = tok.encode(rec["text"].get<std::string>(), true, false);
      if (tok.eos() >= 0 && (ids.empty() || ids.back() != tok.eos())) ids.push_back(tok.eos());
      if (int64_t(ids.size()) > seq) {
        ids.resize(size_t(seq));
        ++stats.truncated;
      }
      out.push_back(all_trained(std::move(ids)));
    }
  } else {
    fail(path, ": unknown data format (use .txt or .jsonl)");
  }
  for (const Example& e : out) {
    ++stats.examples;
    stats.tokens += int64_t(e.tokens.size());
    for (size_t i = 1; i < e.trained.size(); ++i) stats.trained += e.trained[i];
  }
  TEMPER_CHECK(stats.trained > 0, path, ": no token to train on (", stats.examples,
               " examples, ", stats.tokens, " tokens)");
  return out;
}

}  // namespace temper::train
