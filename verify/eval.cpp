// Perplexity: exp of the mean natural-log NLL over the scored predictions of every window.
#include "eval.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "eval_model.h"

namespace temper::verify {

EvalReport run_eval(const EvalOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  // A missing text file is reported before paying for the model load.
  TEMPER_CHECK(file_exists(opts.text) && !is_directory(opts.text), "text file ", opts.text, ": no such file");
  const auto m = load_eval_model(opts.model, /*with_weights=*/true, opts.loras);
  const ScoredText st = prepare_scoring(*m->tok, opts.text, opts.scoring);
  EvalReport r;
  r.model = m->label;
  r.text = opts.text;
  r.scoring = opts.scoring;
  r.scoring.stride = st.plan.stride;
  r.n_text_tokens = st.n_tokens_in_text;
  r.n_used_tokens = st.tokens.size();
  r.n_windows = st.plan.windows.size();
  r.n_scored = st.plan.n_scored;
  r.n_ctx_train = m->model->config().n_ctx_train;
  if (std::string w = training_context_warning(st.plan, r.n_ctx_train, opts.model); !w.empty()) {
    warn(w);
    r.warnings.push_back(std::move(w));
  }
  const size_t per_chunk = st.plan.windows.empty() ? 0 : size_t(st.plan.ctx - 1 - st.plan.windows[0].first_scored);
  RunningMean nll;
  score_windows(*m->model, st.tokens, st.plan, "eval", [&](std::span<const float> row, int32_t target, size_t k) {
    nll.add(log_sum_exp(row) - double(row[size_t(target)]));
    if (opts.scoring.protocol == Protocol::kLlama && (k + 1) % per_chunk == 0) r.chunk_ppl.push_back(std::exp(nll.mean()));
  });
  r.nll = nll.ci95();
  r.ppl = std::exp(r.nll.mean);
  r.ppl_lo = std::exp(r.nll.lo);
  r.ppl_hi = std::exp(r.nll.hi);
  r.ppl_uncertainty = r.ppl * nll.standard_error();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Json eval_json(const EvalReport& r) {
  Json j{{"model", r.model},
         {"text", r.text},
         {"protocol", protocol_name(r.scoring.protocol)},
         {"ctx", r.scoring.ctx},
         {"stride", r.scoring.stride},
         {"n_text_tokens", r.n_text_tokens},
         {"n_used_tokens", r.n_used_tokens},
         {"n_windows", r.n_windows},
         {"n_scored", r.n_scored},
         {"n_ctx_train", r.n_ctx_train},
         {"mean_nll", r.nll.mean},
         {"mean_nll_ci95", {r.nll.lo, r.nll.hi}},
         {"ppl", r.ppl},
         {"ppl_ci95", {r.ppl_lo, r.ppl_hi}},
         {"ppl_uncertainty", r.ppl_uncertainty},
         {"warnings", r.warnings},
         {"seconds", r.seconds}};
  if (r.scoring.chunks > 0) j["chunks"] = r.scoring.chunks;
  if (r.scoring.max_tokens > 0) j["max_tokens"] = r.scoring.max_tokens;
  if (r.scoring.protocol == Protocol::kLlama) j["chunk_ppl"] = r.chunk_ppl;
  return j;
}

void print_eval(const EvalReport& r) {
  const std::string used = r.n_used_tokens < r.n_text_tokens ? cat(" (first ", r.n_used_tokens, " used)") : "";
  if (r.scoring.protocol == Protocol::kLlama) {
    std::printf("%s on %s: %zu tokens%s, %zu chunks of %d, %zu scored (llama-perplexity protocol)\n", r.model.c_str(),
                r.text.c_str(), r.n_text_tokens, used.c_str(), r.n_windows, r.scoring.ctx, r.n_scored);
    for (size_t i = 0; i < r.chunk_ppl.size(); ++i) std::printf("[%zu]%.4lf,", i + 1, r.chunk_ppl[i]);
    std::printf("\nFinal estimate: PPL = %.4lf +/- %.5lf\n", r.ppl, r.ppl_uncertainty);
    std::printf("mean NLL %.6f nats, PPL 95%% CI %.4f - %.4f, %s\n", r.nll.mean, r.ppl_lo, r.ppl_hi,
                human_duration(r.seconds).c_str());
    return;
  }
  std::printf("%s on %s: %zu tokens%s, %zu scored (ctx %d, stride %d)\n", r.model.c_str(), r.text.c_str(),
              r.n_text_tokens, used.c_str(), r.n_scored, r.scoring.ctx, r.scoring.stride);
  std::printf("mean NLL %.6f nats, PPL %.4f (95%% CI %.4f - %.4f), %s\n", r.nll.mean, r.ppl, r.ppl_lo, r.ppl_hi,
              human_duration(r.seconds).c_str());
}

}  // namespace temper::verify
