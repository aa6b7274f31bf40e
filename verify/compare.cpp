// The compare pass: base once (top-k reference + its own NLL), then each candidate against it.
#include "compare.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "eval_model.h"
#include "provenance.h"
#include "topk_store.h"
#include "topk_store_file.h"
#include "windows.h"

namespace temper::verify {
namespace {

void fill_model(ModelSummary& s, const EvalModel& m, const RunningMean& nll, std::string sha256) {
  s.path = m.path;
  s.sha256 = std::move(sha256);
  s.file_bytes = m.file_bytes;
  s.n_params = m.n_params;
  s.bits_per_weight = m.bits_per_weight();
  s.nll = nll.ci95();
  s.ppl = std::exp(s.nll.mean);
  s.ppl_lo = std::exp(s.nll.lo);
  s.ppl_hi = std::exp(s.nll.hi);
}


// This run's identity for a saved reference (topk_store_file.h), with the hashes the report's
// provenance already took (each input is read once for hashing).
BaseReference run_identity(const CompareOptions& opts, const EvalModel& base, const ScoredText& st,
                           const std::string& text_sha256, const std::string& base_sha256) {
  BaseReference id;
  id.scoring = opts.scoring();
  id.scoring.stride = st.plan.stride;
  id.top_k = std::min(opts.top_k, base.n_vocab());
  id.n_vocab = base.n_vocab();
  id.bos = st.plan.bos;
  id.tokens = st.tokens;
  id.tokens_sha256 = hash_tokens(st.tokens);
  id.n_tokens_in_text = st.n_tokens_in_text;
  id.base_path = opts.base;
  id.text_path = opts.text;
  id.text_sha256 = text_sha256;
  id.base_sha256 = base_sha256;
  return id;
}

}  // namespace

CompareReport run_compare(const CompareOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  TEMPER_CHECK(!opts.candidates.empty() || !opts.save_base.empty() || !opts.loras.empty(),
               "compare needs at least one candidate after the base model (or --save-base, or --lora)");
  TEMPER_CHECK(opts.top_k >= 1, "--top-k ", opts.top_k, ": must be at least 1");
  TEMPER_CHECK(opts.save_base.empty() || opts.base_ref.empty(), "--save-base and --base-ref cannot be combined");
  TEMPER_CHECK(opts.base_ref.empty() || opts.tasks.empty(),
               "--tasks needs the base model to answer the questions: it cannot be combined with --base-ref");
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
  std::optional<BaseReference> saved;
  if (!opts.base_ref.empty()) saved = load_base_reference(opts.base_ref);
  std::unique_ptr<AtomicOutput> ref_out;  // made now: an unwritable path should not cost a base pass
  if (!opts.save_base.empty()) {
    std::vector<std::string> inputs = {opts.base, opts.text};
    inputs.insert(inputs.end(), opts.candidates.begin(), opts.candidates.end());
    if (!opts.tasks.empty()) inputs.push_back(opts.tasks);
    ref_out = std::make_unique<AtomicOutput>(opts.save_base, /*overwrite=*/true, inputs);
  }
  CompareReport r;
  r.opts = opts;
  if (!opts.tasks.empty()) r.tasks = load_tasks(opts.tasks);
  r.text_sha256 = sha256_of_path(opts.text);
  if (!opts.tasks.empty()) r.tasks_sha256 = sha256_of_path(opts.tasks);
  const std::string base_sha256 = sha256_of_path(opts.base);

  ScoredText st;
  TopkStore ref(opts.top_k);
  int base_vocab = 0;
  {
    // With a saved reference the base is only opened (headers, tokenizer) and hashed, not run.
    const auto base = load_eval_model(opts.base, /*with_weights=*/!saved);
    base_vocab = base->n_vocab();
    st = prepare_scoring(*base->tok, opts.text, opts.scoring());
    if (std::string w = training_context_warning(st.plan, base->n_ctx_train(), opts.base); !w.empty()) {
      warn(w);
      r.warnings.push_back(std::move(w));
    }
    RunningMean nll;
    if (saved) {
      check_base_reference(opts.base_ref, *saved, run_identity(opts, *base, st, r.text_sha256, base_sha256));
      ref = std::move(saved->store);
      for (size_t t = 0; t < ref.size(); ++t) nll.add(ref.nll(t));
      info("base: top-", ref.k(), " reference from ", opts.base_ref);
    } else {
      score_windows(*base->model, st.tokens, st.plan, "base " + opts.base,
                    [&](std::span<const float> row, int32_t target, size_t) {
                      ref.add(row, target);
                      nll.add(ref.nll(ref.size() - 1));
                    });
      if (!r.tasks.empty()) r.base.tasks = run_tasks(*base, r.tasks, opts.task_tokens);
    }
    fill_model(r.base, *base, nll, base_sha256);
    if (ref_out) {
      BaseReference out = run_identity(opts, *base, st, r.text_sha256, base_sha256);
      out.store = std::move(ref);
      save_base_reference(*ref_out, out);
      ref = std::move(out.store);
      info("wrote the base's top-", ref.k(), " reference to ", opts.save_base);
    }
  }
  const std::vector<int32_t>& text = st.tokens;
  const WindowPlan& plan = st.plan;
  r.stride = plan.stride;
  r.n_text_tokens = st.n_tokens_in_text;
  r.n_scored = plan.n_scored;
  r.reference_bytes = ref.bytes();
  log_verbose(cat("top-", ref.k(), " reference: ", human_bytes(double(ref.bytes())), " for ", ref.size(), " tokens"));

  std::vector<std::string> candidates = opts.candidates;
  if (candidates.empty() && !opts.loras.empty()) candidates.push_back(opts.base);
  for (const std::string& path : candidates) {
    const auto m = load_eval_model(path, /*with_weights=*/true, opts.loras);
    // The base's tokens and top-k ids are fed to the candidate: the vocabularies must agree.
    TEMPER_CHECK(m->n_vocab() == base_vocab, "cannot compare ", path, ": its vocabulary has ", m->n_vocab(),
                 " tokens, the base's (", opts.base, ") ", base_vocab);
    CandidateStats stats;
    stats.kl.reserve(ref.size());
    score_windows(*m->model, text, plan, "compare " + path, [&](std::span<const float> row, int32_t target, size_t k) {
      ref.accumulate(k, row, target, stats);
    });
    CandidateSummary c;
    fill_model(c, *m, stats.nll, sha256_of_path(path));
    c.path = m->label;
    const MeanCI d = stats.nll_diff.ci95();
    c.ppl_ratio = std::exp(d.mean);
    c.ppl_ratio_lo = std::exp(d.lo);
    c.ppl_ratio_hi = std::exp(d.hi);
    RunningMean kl_mean;
    for (float v : stats.kl) kl_mean.add(v);
    c.kl_ci = kl_mean.ci95();
    c.kl = summarize(stats.kl);
    c.same_top1 = double(stats.same_top1) / double(ref.size());
    c.mean_dp = stats.dp.ci95().mean;
    c.rms_dp = std::sqrt(stats.dp2.ci95().mean);
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
