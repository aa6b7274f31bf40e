// The compare pass: base once (top-k reference + its own NLL), then each candidate against it.
#include "compare.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "eval_model.h"
#include "provenance.h"
#include "topk_store.h"
#include "windows.h"

namespace temper::verify {
namespace {

void fill_model(ModelSummary& s, const EvalModel& m, const RunningMean& nll) {
  s.path = m.path;
  s.sha256 = sha256_of_path(m.path);
  s.file_bytes = m.file_bytes;
  s.n_params = m.n_params;
  s.bits_per_weight = m.bits_per_weight();
  s.nll = nll.ci95();
  s.ppl = std::exp(s.nll.mean);
  s.ppl_lo = std::exp(s.nll.lo);
  s.ppl_hi = std::exp(s.nll.hi);
}

}  // namespace

CompareReport run_compare(const CompareOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  TEMPER_CHECK(!opts.candidates.empty(), "compare needs at least one candidate after the base model");
  TEMPER_CHECK(opts.top_k >= 1, "--top-k ", opts.top_k, ": must be at least 1");
  // Cheap checks first, so a typo does not cost a full base pass.
  TEMPER_CHECK(file_exists(opts.text) && !is_directory(opts.text), "text file ", opts.text, ": no such file");
  for (const std::string& c : opts.candidates) {
    TEMPER_CHECK(std::filesystem::exists(c), "cannot load model ", c, ": no such file or folder");
    try {
      open_model(c);  // headers only (mapped, not read): a broken file fails before the base pass
    } catch (const Error& e) {
      fail("cannot load model ", c, ": ", e.what());
    }
  }
  CompareReport r;
  r.opts = opts;
  if (!opts.tasks.empty()) r.tasks = load_tasks(opts.tasks);
  r.text_sha256 = sha256_of_path(opts.text);
  if (!opts.tasks.empty()) r.tasks_sha256 = sha256_of_path(opts.tasks);

  std::vector<int32_t> text;
  WindowPlan plan;
  TopkStore ref(opts.top_k);
  int base_vocab = 0;
  {
    const auto base = load_eval_model(opts.base);
    base_vocab = base->n_vocab();
    text = tokenize_text_file(*base->tok, opts.text);
    plan = plan_windows(text.size(), opts.ctx, opts.stride, base->tok->bos());
    RunningMean nll;
    score_windows(*base->model, text, plan, "base " + opts.base, [&](std::span<const float> row, int32_t target, size_t) {
      ref.add(row, target);
      nll.add(ref.nll(ref.size() - 1));
    });
    fill_model(r.base, *base, nll);
    if (!r.tasks.empty()) r.base.tasks = run_tasks(*base, r.tasks, opts.task_tokens);
  }
  r.stride = plan.stride;
  r.n_text_tokens = text.size();
  r.n_scored = plan.n_scored;
  r.reference_bytes = ref.bytes();
  log_verbose(cat("top-", ref.k(), " reference: ", human_bytes(double(ref.bytes())), " for ", ref.size(), " tokens"));

  for (const std::string& path : opts.candidates) {
    const auto m = load_eval_model(path);
    // The base's tokens and top-k ids are fed to the candidate: the vocabularies must agree.
    TEMPER_CHECK(m->n_vocab() == base_vocab, "cannot compare ", path, ": its vocabulary has ", m->n_vocab(),
                 " tokens, the base's (", opts.base, ") ", base_vocab);
    CandidateStats st;
    st.kl.reserve(ref.size());
    score_windows(*m->model, text, plan, "compare " + path, [&](std::span<const float> row, int32_t target, size_t k) {
      ref.accumulate(k, row, target, st);
    });
    CandidateSummary c;
    fill_model(c, *m, st.nll);
    const MeanCI d = st.nll_diff.ci95();
    c.ppl_ratio = std::exp(d.mean);
    c.ppl_ratio_lo = std::exp(d.lo);
    c.ppl_ratio_hi = std::exp(d.hi);
    RunningMean kl_mean;
    for (float v : st.kl) kl_mean.add(v);
    c.kl_ci = kl_mean.ci95();
    c.kl = summarize(st.kl);
    c.same_top1 = double(st.same_top1) / double(ref.size());
    c.mean_dp = st.dp.ci95().mean;
    c.rms_dp = std::sqrt(st.dp2.ci95().mean);
    if (!r.tasks.empty()) {
      c.tasks = run_tasks(*m, r.tasks, opts.task_tokens);
      for (size_t i = 0; i < r.tasks.size(); ++i) {
        const TaskOutcome& b = r.base.tasks->items[i];
        const TaskOutcome& o = c.tasks->items[i];
        if (b.correct != o.correct) c.flips.push_back({i, b.correct, b.given, o.given});
      }
    }
    r.candidates.push_back(std::move(c));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace temper::verify
