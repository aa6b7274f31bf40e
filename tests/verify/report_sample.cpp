// Writes a `temper compare --html` page for a synthetic CompareReport: N candidates (1..12) of
// a 1.24 B model against its 38.6 bits-per-weight .h5 checkpoint, from F32 down to Q2_K, with
// figures shaped like real ones (KL spanning seven decades, an exact 0 for F32, F16 and BF16 at
// the same bit width, Q4_K_S/Q4_0 next to each other) and a task set with flips. The layout
// test (report_layout_test.py) renders these in Chromium.
//   report_sample N OUT.html
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "verify/compare.h"

namespace {

using temper::verify::CandidateSummary;
using temper::verify::CompareReport;

struct Kind {
  const char* type;
  double bpw, ratio, kl, top1, rms_dp;
  double nll_diff_sd;  // per-token spread of the NLL difference (sets the ratio's interval)
};
// Shaped after llama-perplexity --kl-divergence figures of ~1 B models.
constexpr Kind kKinds[] = {
    {"F32", 32.0, 1.0, 0.0, 1.0, 0.0, 0.0},
    {"F16", 16.0, 1.00002, 2.1e-6, 0.9996, 0.00021, 0.002},
    {"BF16", 16.0, 1.0003, 6.5e-5, 0.9961, 0.0011, 0.01},
    {"Q8_0", 8.5, 1.0011, 9.2e-4, 0.9892, 0.0043, 0.04},
    {"Q6_K", 6.56, 1.0042, 0.0031, 0.9761, 0.0082, 0.08},
    {"Q5_K_M", 5.69, 1.0098, 0.0071, 0.9642, 0.0121, 0.12},
    {"Q5_K_S", 5.54, 1.0121, 0.0083, 0.9603, 0.0131, 0.13},
    {"Q4_K_M", 4.89, 1.0325, 0.0201, 0.9411, 0.0212, 0.2},
    {"Q4_K_S", 4.67, 1.0402, 0.0256, 0.9332, 0.0241, 0.23},
    {"Q4_0", 4.55, 1.0611, 0.0401, 0.9163, 0.0302, 0.28},
    {"Q3_K_M", 3.91, 1.1105, 0.0789, 0.8821, 0.0431, 0.4},
    {"Q2_K", 3.18, 1.521, 0.331, 0.7853, 0.0912, 0.75},
};
constexpr size_t kNumKinds = sizeof kKinds / sizeof kKinds[0];

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: report_sample N OUT.html\n");
    return 2;
  }
  const size_t n = std::strtoul(argv[1], nullptr, 10);
  if (n < 1 || n > kNumKinds) {
    std::fprintf(stderr, "report_sample: N must be 1..%zu\n", kNumKinds);
    return 2;
  }
  const std::string dir = "/srv/models/llama-3.2-1b-instruct/";
  const uint64_t params = 1235814400;
  const double scored = 4096, z = 1.96;
  CompareReport r;
  r.opts.text = "/srv/data/wikitext-2-raw/wiki.test.raw";
  r.opts.ctx = 512;
  r.opts.tasks = "/srv/data/tasks/arith-and-facts.jsonl";
  r.text_sha256 = "3fd9a8b4e4f5c4c1c3e2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0";
  r.tasks_sha256 = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
  r.stride = 512;
  r.n_text_tokens = 4104;
  r.n_scored = size_t(scored);
  r.reference_bytes = uint64_t(scored * 64 * 8);
  r.seconds = 1234.5;
  for (int i = 0; i < 6; ++i) {
    temper::verify::TaskItem t;
    t.line = i + 1;
    t.question = i % 2 ? "A farmer has 17 sheep and buys 3 times as many goats as sheep, then sells 12 goats. How many "
                         "animals does the farmer have now? Answer with a number."
                       : "Which planet is known as the red planet?";
    t.answer = i % 2 ? "56" : "mars";
    r.tasks.push_back(t);
  }
  auto tasks_of = [&](size_t wrong) {
    temper::verify::TaskResults t;
    for (size_t i = 0; i < r.tasks.size(); ++i) t.items.push_back({i >= wrong, i >= wrong ? r.tasks[i].answer : "41"});
    t.correct = r.tasks.size() - std::min(wrong, r.tasks.size());
    return t;
  };
  r.base.path = dir + "Llama-3.2-1B-Instruct.h5";
  r.base.sha256 = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
  r.base.n_params = params;
  r.base.bits_per_weight = 38.6;  // f32 weights plus HDF5 chunk overhead and tokenizer assets
  r.base.file_bytes = uint64_t(38.6 * double(params) / 8);
  r.base.nll = {std::log(12.433), std::log(12.433) - z * 2.9 / std::sqrt(scored), std::log(12.433) + z * 2.9 / std::sqrt(scored)};
  r.base.ppl = 12.433, r.base.ppl_lo = std::exp(r.base.nll.lo), r.base.ppl_hi = std::exp(r.base.nll.hi);
  r.base.tasks = tasks_of(1);
  for (size_t i = 0; i < n; ++i) {
    // Spread N picks over the list, ends included.
    const Kind& k = kKinds[n == 1 ? kNumKinds / 2 : i * (kNumKinds - 1) / (n - 1)];
    CandidateSummary c;
    c.path = dir + "Llama-3.2-1B-Instruct-" + k.type + ".gguf";
    c.sha256 = std::string(64, "0123456789abcdef"[i % 16]);
    c.n_params = params;
    c.bits_per_weight = k.bpw;
    c.file_bytes = uint64_t(k.bpw * double(params) / 8);
    c.ppl_ratio = k.ratio;
    const double hw = z * k.nll_diff_sd / std::sqrt(scored);
    c.ppl_ratio_lo = k.ratio * std::exp(-hw), c.ppl_ratio_hi = k.ratio * std::exp(hw);
    c.ppl = r.base.ppl * k.ratio, c.ppl_lo = r.base.ppl_lo * k.ratio, c.ppl_hi = r.base.ppl_hi * k.ratio;
    c.nll = {std::log(c.ppl), std::log(c.ppl_lo), std::log(c.ppl_hi)};
    // Per-token KL is heavy tailed: sd ~ 3x the mean; the quantiles follow suit.
    const double kl_hw = z * 3 * k.kl / std::sqrt(scored);
    c.kl_ci = {k.kl, k.kl - kl_hw, k.kl + kl_hw};
    c.kl = {k.kl, 0.45 * k.kl, 2.4 * k.kl, 11 * k.kl, 60 * k.kl};
    c.same_top1 = k.top1;
    c.rms_dp = k.rms_dp;
    c.tasks = tasks_of(1 + i / 4);
    for (size_t q = 0; q < r.tasks.size(); ++q)
      if (c.tasks->items[q].correct != r.base.tasks->items[q].correct)
        c.flips.push_back({q, r.base.tasks->items[q].correct, r.base.tasks->items[q].given, c.tasks->items[q].given});
    r.candidates.push_back(c);
  }
  std::ofstream out(argv[2], std::ios::binary);
  out << temper::verify::compare_html(r);
  return out.good() ? 0 : 1;
}
