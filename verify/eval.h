// `temper eval`: perplexity of one model over a text file.
#pragma once
#include <string>

#include "core/json.h"
#include "metrics.h"

namespace temper::verify {

struct EvalOptions {
  std::string model, text;
  int ctx = 512;
  int stride = 0;  // 0 = non-overlapping windows
};

struct EvalReport {
  std::string model, text;
  int ctx = 0, stride = 0;
  size_t n_text_tokens = 0, n_scored = 0;
  MeanCI nll;             // natural-log NLL per scored token, with its 95% interval
  double ppl = 0, ppl_lo = 0, ppl_hi = 0;
  double seconds = 0;
};

EvalReport run_eval(const EvalOptions& opts);
Json eval_json(const EvalReport& r);

}  // namespace temper::verify
