// `temper compare`: one pass of the base model over the text keeps a compact top-k reference
// (topk_store.h); every candidate is then scored against it, one at a time, so memory does not
// grow with the number of candidates or hold full logits of the text.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "metrics.h"
#include "tasks.h"
#include "windows.h"

namespace temper::verify {

struct CompareOptions {
  std::string base;
  std::vector<std::string> candidates;
  std::string text;
  int ctx = 512;
  int stride = 0;
  Protocol protocol = Protocol::kWindows;
  int chunks = 0;         // see ScoringSpec
  size_t max_tokens = 0;
  int top_k = 64;  // 64 keeps the KL estimate within 1% even on flat 512-token distributions
  std::string tasks;      // JSONL question set ("" = none)
  int task_tokens = 256;  // generation budget per exact-match question
  std::string save_base;  // write the base's top-k reference here (topk_store_file.h)
  std::string base_ref;   // use this saved reference instead of running the base
  // --lora ADAPTER[:SCALE]: applied to every candidate; with no candidate given, the candidate
  // is the base itself with the adapters (base vs fine-tuned).
  std::vector<std::string> loras;
  ScoringSpec scoring() const { return {ctx, stride, protocol, chunks, max_tokens}; }
};

struct ModelSummary {
  std::string path;
  std::string sha256;  // provenance.h: of the file, or of a folder's file listing
  uint64_t file_bytes = 0, n_params = 0;
  double bits_per_weight = 0;
  MeanCI nll;
  double ppl = 0, ppl_lo = 0, ppl_hi = 0;
  std::optional<TaskResults> tasks;
};

struct Flip {
  size_t index;  // into the task list
  bool base_correct;
  std::string base_given, candidate_given;
};

struct CandidateSummary : ModelSummary {
  double ppl_ratio = 0, ppl_ratio_lo = 0, ppl_ratio_hi = 0;
  Distribution kl;
  MeanCI kl_ci;           // 95% interval of the mean KL
  double same_top1 = 0;   // fraction of scored tokens with the base's top token on top
  double rms_dp = 0, mean_dp = 0;
  std::vector<Flip> flips;
};

struct CompareReport {
  CompareOptions opts;
  std::string text_sha256, tasks_sha256;
  int stride = 0;
  size_t n_text_tokens = 0, n_scored = 0;
  uint64_t reference_bytes = 0;  // memory held by the top-k reference
  std::vector<std::string> warnings;
  ModelSummary base;
  std::vector<CandidateSummary> candidates;
  std::vector<TaskItem> tasks;
  double seconds = 0;
};

CompareReport run_compare(const CompareOptions& opts);

Json compare_json(const CompareReport& r);
void print_compare_table(const CompareReport& r);
// A self-contained HTML page (inline SVG charts and tables, no scripts, well-formed XHTML).
std::string compare_html(const CompareReport& r);

}  // namespace temper::verify
