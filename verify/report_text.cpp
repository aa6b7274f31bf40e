// compare's terminal table and --json document.
#include <cstdio>

#include "compare.h"
#include "core/log.h"

namespace temper::verify {
namespace {

Json model_json(const ModelSummary& m) {
  Json j = {{"path", m.path},
            {"sha256", m.sha256},
            {"file_bytes", m.file_bytes},
            {"parameters", m.n_params},
            {"bits_per_weight", m.bits_per_weight},
            {"mean_nll", m.nll.mean},
            {"ppl", m.ppl},
            {"ppl_ci95", {m.ppl_lo, m.ppl_hi}}};
  if (m.tasks) {
    Json given = Json::array(), correct = Json::array();
    for (const TaskOutcome& o : m.tasks->items) {
      given.push_back(o.given);
      correct.push_back(o.correct);
    }
    j["tasks"] = {{"n", m.tasks->items.size()}, {"correct", m.tasks->correct}, {"accuracy", m.tasks->accuracy()},
                  {"answers", given}, {"is_correct", correct}};
  }
  return j;
}

std::string left_cut(const std::string& s, size_t w) {
  return s.size() <= w ? s : "..." + s.substr(s.size() - (w - 3));
}

std::string right_cut(const std::string& s, size_t w) { return s.size() <= w ? s : s.substr(0, w - 3) + "..."; }

std::string tasks_cell(const ModelSummary& m) {
  if (!m.tasks) return "";
  return cat(m.tasks->correct, "/", m.tasks->items.size());
}

}  // namespace

Json compare_json(const CompareReport& r) {
  Json j = {{"text", r.opts.text},       {"ctx", r.opts.ctx},         {"stride", r.stride},
            {"top_k", r.opts.top_k},     {"n_text_tokens", r.n_text_tokens}, {"n_scored", r.n_scored},
            {"reference_bytes", r.reference_bytes}, {"seconds", r.seconds}, {"base", model_json(r.base)},
            {"text_sha256", r.text_sha256}};
  if (!r.tasks.empty()) j["tasks_file"] = r.opts.tasks, j["tasks_sha256"] = r.tasks_sha256;
  j["protocol"] = protocol_name(r.opts.protocol);
  if (r.opts.chunks > 0) j["chunks"] = r.opts.chunks;
  if (r.opts.max_tokens > 0) j["max_tokens"] = r.opts.max_tokens;
  if (!r.opts.base_ref.empty()) j["base_ref"] = r.opts.base_ref;
  j["warnings"] = r.warnings;
  j["candidates"] = Json::array();
  for (const CandidateSummary& c : r.candidates) {
    Json cj = model_json(c);
    cj["ppl_ratio"] = c.ppl_ratio;
    cj["ppl_ratio_ci95"] = {c.ppl_ratio_lo, c.ppl_ratio_hi};
    cj["kl"] = {{"mean", c.kl.mean}, {"mean_ci95", {c.kl_ci.lo, c.kl_ci.hi}}, {"median", c.kl.median}, {"p90", c.kl.p90}, {"p99", c.kl.p99}, {"max", c.kl.max}};
    cj["same_top1"] = c.same_top1;
    cj["rms_dp"] = c.rms_dp;
    cj["mean_dp"] = c.mean_dp;
    if (c.tasks) {
      cj["flips"] = Json::array();
      for (const Flip& f : c.flips)
        cj["flips"].push_back({{"index", f.index},
                               {"line", r.tasks[f.index].line},
                               {"question", r.tasks[f.index].question},
                               {"base_correct", f.base_correct},
                               {"candidate_correct", !f.base_correct},
                               {"base_answer", f.base_given},
                               {"candidate_answer", f.candidate_given}});
    }
    j["candidates"].push_back(std::move(cj));
  }
  return j;
}

void print_compare_table(const CompareReport& r) {
  std::printf("%s: %zu tokens, %zu scored (%s protocol, ctx %d, stride %d); base top-%d reference%s\n\n",
              r.opts.text.c_str(), r.n_text_tokens, r.n_scored, protocol_name(r.opts.protocol), r.opts.ctx, r.stride,
              r.opts.top_k, r.opts.base_ref.empty() ? "" : cat(" from ", r.opts.base_ref).c_str());
  std::printf("%-36s %10s %6s %22s %22s %9s %9s %9s %9s %7s %7s %7s\n", "model", "size", "bpw", "PPL [95% CI]",
              "PPL ratio [95% CI]", "KL mean", "KL med", "KL p99", "KL max", "top-1", "RMS dp", "tasks");
  auto ci = [](double v, double lo, double hi, int prec) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f [%.*f, %.*f]", prec, v, prec, lo, prec, hi);
    return std::string(b);
  };
  const ModelSummary& b = r.base;
  std::printf("%-36s %10s %6.2f %22s %22s %9s %9s %9s %9s %7s %7s %7s\n", left_cut(b.path, 36).c_str(),
              human_bytes(double(b.file_bytes)).c_str(), b.bits_per_weight, ci(b.ppl, b.ppl_lo, b.ppl_hi, 3).c_str(),
              "(base)", "", "", "", "", "", "", tasks_cell(b).c_str());
  for (const CandidateSummary& c : r.candidates)
    std::printf("%-36s %10s %6.2f %22s %22s %9.5f %9.5f %9.5f %9.5f %6.2f%% %6.2f%% %7s\n", left_cut(c.path, 36).c_str(),
                human_bytes(double(c.file_bytes)).c_str(), c.bits_per_weight, ci(c.ppl, c.ppl_lo, c.ppl_hi, 3).c_str(),
                ci(c.ppl_ratio, c.ppl_ratio_lo, c.ppl_ratio_hi, 4).c_str(), c.kl.mean, c.kl.median, c.kl.p99, c.kl.max,
                100 * c.same_top1, 100 * c.rms_dp, tasks_cell(c).c_str());
  for (const CandidateSummary& c : r.candidates) {
    if (!c.tasks || c.flips.empty()) continue;
    std::printf("\nflips of %s vs base (%zu):\n", c.path.c_str(), c.flips.size());
    for (const Flip& f : c.flips) {
      const TaskItem& t = r.tasks[f.index];
      std::printf("  line %d: %s -> %s (base '%s', candidate '%s'): %s\n", t.line, f.base_correct ? "right" : "wrong",
                  f.base_correct ? "wrong" : "right", f.base_given.c_str(), f.candidate_given.c_str(),
                  right_cut(t.question, 70).c_str());
    }
  }
}

}  // namespace temper::verify
