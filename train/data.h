// Training data, kept small and behind one interface: a file becomes a list of examples, each
// tokens plus a per-token trained mask (train.h's Example). Formats so far: plain text (.txt,
// tokenised as one stream with the tokenizer's BOS and cut into --seq token chunks) and JSONL
// with a "text" field per record (BOS + text + EOS, truncated to --seq). Chat/instruction
// formats with prompt masking are to come as another reader behind the same interface.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "train/train.h"

namespace temper::train {

struct DataStats {
  int64_t examples = 0, tokens = 0, trained = 0;
  int64_t truncated = 0;  // JSONL records longer than seq, cut to seq
};

// Reads `path` by its extension (.txt, .jsonl). Throws Error naming the file and line for a
// malformed JSONL line or a record without a string "text" field, and for data in which no
// token is trained.
std::vector<Example> read_examples(const std::string& path, const Tokenizer& tok, int seq,
                                   DataStats& stats);

}  // namespace temper::train
