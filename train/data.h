// Training data behind one interface: a file becomes a list of examples, each tokens plus a
// per-token trained mask (train.h's Example). Plain text (.txt) is tokenised as one stream with
// the tokenizer's BOS and cut into --seq token chunks, every token trained; JSONL (.jsonl) is
// read by data_chat.h (messages, prompt/completion, Alpaca, text records, prompt masking).
#pragma once
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "train/data_chat.h"
#include "train/train.h"

namespace temper::train {

// Reads `path` by its extension (.txt, .jsonl), adding to `stats`. Throws Error naming the file
// (and line, for JSONL) for malformed data and for data in which no token is trained.
std::vector<Example> read_examples(const std::string& path, const Tokenizer& tok,
                                   const ChatDataOptions& opt, ChatDataStats& stats);

// One info line: examples, tokens, trained tokens, truncated, dropped, skipped, merged.
void log_data_stats(const std::string& what, const ChatDataStats& stats);

}  // namespace temper::train
