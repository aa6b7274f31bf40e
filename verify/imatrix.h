// `temper imatrix`: the importance matrix llama.cpp's llama-imatrix collects (per weight matrix
// the runtime multiplies, the per-input-column sum of squared activations and the token count;
// per expert for MoE), from temper's own forward pass, written in llama-imatrix's GGUF format
// or its legacy .dat (quantize/imatrix.h).
//
// What llama-imatrix does, and so what this does (tools/imatrix/imatrix.cpp of the pinned
// release): the whole text is tokenized with BOS and cut into back-to-back chunks of ctx tokens
// (the tail is dropped), each chunk's first token replaced by BOS and evaluated from an empty
// cache. Every matrix named blk.* is collected (not output.weight); a dense product counts each
// token once, an expert product (ffn_*_exps) only the tokens routed to that expert. llama.cpp
// skips dense products of fewer than 16 rows: with its default batch (2048) and micro-batch
// (512) sizes that drops the tail of a chunk that lands in a micro-batch under 16 rows, which
// this reproduces per token (expert products keep every row, as there).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace temper::verify {

struct ImatrixOptions {
  std::string model, text, data, output;
  int ctx = 512;
  int chunks = -1;       // -1: all
  bool legacy_dat = false;
  bool overwrite = false;
  int64_t min_tokens = 200;  // an entry (expert) with fewer counted tokens is reported
};

struct ImatrixFewTokens {
  std::string tensor;
  int expert = -1;  // -1: a dense matrix
  int64_t count = 0;
};

struct ImatrixReport {
  std::string output, format;
  int ctx = 0, chunks = 0;
  int64_t tokens = 0;     // evaluated
  int64_t available = 0;  // tokens of the text or data
  size_t entries = 0;
  double seconds = 0;
  std::vector<ImatrixFewTokens> few;
};

// The llama.cpp micro-batch rows each token of a chunk is computed in (llama-imatrix's
// defaults: batch 2048, micro-batch 512, ctx/2048 chunks side by side per batch). chunk:
// index; n_chunk: chunks in the run.
std::vector<int> llama_ubatch_rows(int ctx, int chunk, int n_chunk);

ImatrixReport run_imatrix(const ImatrixOptions& o);
void print_imatrix(const ImatrixReport& r, int64_t min_tokens);
Json imatrix_json(const ImatrixReport& r);

}  // namespace temper::verify
