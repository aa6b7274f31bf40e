// Perplexity: exp of the mean natural-log NLL over the scored predictions of every window.
#include "eval.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/file.h"
#include "eval_model.h"
#include "windows.h"

namespace temper::verify {

EvalReport run_eval(const EvalOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  // A missing text file is reported before paying for the model load.
  TEMPER_CHECK(file_exists(opts.text) && !is_directory(opts.text), "text file ", opts.text, ": no such file");
  const auto m = load_eval_model(opts.model);
  const std::vector<int32_t> text = tokenize_text_file(*m->tok, opts.text);
  const WindowPlan plan = plan_windows(text.size(), opts.ctx, opts.stride, m->tok->bos());
  RunningMean nll;
  score_windows(*m->model, text, plan, "eval", [&](std::span<const float> row, int32_t target, size_t) {
    nll.add(log_sum_exp(row) - double(row[size_t(target)]));
  });
  EvalReport r;
  r.model = opts.model;
  r.text = opts.text;
  r.ctx = plan.ctx;
  r.stride = plan.stride;
  r.n_text_tokens = text.size();
  r.n_scored = plan.n_scored;
  r.nll = nll.ci95();
  r.ppl = std::exp(r.nll.mean);
  r.ppl_lo = std::exp(r.nll.lo);
  r.ppl_hi = std::exp(r.nll.hi);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Json eval_json(const EvalReport& r) {
  return Json{{"model", r.model},         {"text", r.text},           {"ctx", r.ctx},
              {"stride", r.stride},       {"n_text_tokens", r.n_text_tokens}, {"n_scored", r.n_scored},
              {"mean_nll", r.nll.mean},   {"mean_nll_ci95", {r.nll.lo, r.nll.hi}},
              {"ppl", r.ppl},             {"ppl_ci95", {r.ppl_lo, r.ppl_hi}}, {"seconds", r.seconds}};
}

}  // namespace temper::verify
