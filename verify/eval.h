// `temper eval`: perplexity of one model over a text file.
#pragma once
#include <string>
#include <vector>

#include "core/json.h"
#include "metrics.h"
#include "windows.h"

namespace temper::verify {

struct EvalOptions {
  std::string model, text;
  ScoringSpec scoring;
  std::vector<std::string> loras;  // --lora ADAPTER[:SCALE] applied to the model
};

struct EvalReport {
  std::string model, text;
  ScoringSpec scoring;          // as given, with the stride resolved
  size_t n_text_tokens = 0;     // the text's tokens (llama protocol: BOS included, as llama.cpp counts)
  size_t n_used_tokens = 0;     // after --max-tokens
  size_t n_windows = 0, n_scored = 0;
  int n_ctx_train = 0;          // the model's training context (0 = unknown)
  MeanCI nll;                   // natural-log NLL per scored token, with its 95% interval
  double ppl = 0, ppl_lo = 0, ppl_hi = 0;
  double ppl_uncertainty = 0;   // llama-perplexity's "+/-": PPL times the standard error of the mean NLL
  std::vector<double> chunk_ppl;  // llama protocol: the running PPL after each chunk, as llama prints it
  std::vector<std::string> warnings;
  double seconds = 0;
};

EvalReport run_eval(const EvalOptions& opts);
Json eval_json(const EvalReport& r);
// The human-readable result on stdout; for --protocol llama it ends with llama-perplexity's own
// lines ("[1]x,[2]y,..." and "Final estimate: PPL = x +/- y").
void print_eval(const EvalReport& r);

}  // namespace temper::verify
