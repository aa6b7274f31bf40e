// Plain-text reader; JSONL goes to data_chat (see data.h).
#include "train/data.h"

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

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

std::vector<Example> read_examples(const std::string& path, const Tokenizer& tok,
                                   const ChatDataOptions& opt, ChatDataStats& stats) {
  TEMPER_CHECK(opt.seq >= 2, "--seq must be at least 2, got ", opt.seq);
  if (ends_with(path, ".jsonl")) return read_chat_examples(path, tok, opt, stats);
  TEMPER_CHECK(ends_with(path, ".txt"), path, ": unknown data format (use .txt or .jsonl)");
  // One token stream; chunks of seq tokens (a last chunk of one token predicts nothing).
  const std::vector<int32_t> ids = tok.encode(read_text_file(path), true, false);
  std::vector<Example> out;
  for (size_t i = 0; i + 1 < ids.size(); i += size_t(opt.seq)) {
    out.push_back(all_trained({ids.begin() + i, ids.begin() + std::min(ids.size(), i + opt.seq)}));
    ++stats.records;
    ++stats.examples;
    stats.tokens += int64_t(out.back().tokens.size());
    stats.trained += int64_t(out.back().tokens.size()) - 1;
  }
  TEMPER_CHECK(!out.empty(), path, ": no token to train on (", ids.size(), " tokens)");
  return out;
}

void log_data_stats(const std::string& what, const ChatDataStats& s) {
  info(what, ": ", s.examples, " examples, ", s.tokens, " tokens, ", s.trained,
       " trained; ", s.truncated, " truncated, ", s.dropped_long, " dropped (--drop-long), ",
       s.empty_mask, " skipped with no trained token, ", s.merged_boundaries,
       " merged prompt/answer boundaries");
}

}  // namespace temper::train
