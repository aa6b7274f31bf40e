// The numbers compare reports: log-softmax pieces, distribution summaries, 95% confidence
// intervals, and the running per-candidate accumulator (PPL, KL, top-1, Δp).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace temper::verify {

// log(sum(exp(row))) in double, shifted by the max for range.
double log_sum_exp(std::span<const float> row);
// Index of the largest value (the lowest index among equal maxima).
int32_t argmax(std::span<const float> row);

struct Distribution {
  double mean = 0, median = 0, p90 = 0, p99 = 0, max = 0;
};
// Quantiles by linear interpolation between order statistics (median of an even count = mean
// of the two middle values). Sorts `v`.
Distribution summarize(std::vector<float>& v);

// Mean of per-token values with a 95% interval: mean ± 1.96 sd/sqrt(n).
struct MeanCI {
  double mean = 0, lo = 0, hi = 0;
};
class RunningMean {
 public:
  // Out of line on purpose: inlined into different callers, x * x + sum2_ may or may not be
  // contracted into an FMA (-march=x86-64-v3 has FMA), and compare --base-ref must reproduce
  // the very numbers of the run that saved the reference.
  void add(double x);
  size_t n() const { return n_; }
  double mean() const { return n_ ? sum_ / double(n_) : 0; }
  MeanCI ci95() const;
  // Standard error of the mean, computed as llama-perplexity does: sqrt((E[x^2] - E[x]^2) / (n - 1)),
  // i.e. the sample standard deviation over sqrt(n). 0 for fewer than 2 values.
  double standard_error() const;

 private:
  size_t n_ = 0;
  double sum_ = 0, sum2_ = 0;
};

// Everything compare reports for one candidate, accumulated token by token.
struct CandidateStats {
  RunningMean nll;        // candidate NLL of the true token
  RunningMean nll_diff;   // candidate NLL - base NLL, per token
  RunningMean dp;         // p_cand(true token) - p_base(true token), llama.cpp's Δp
  RunningMean dp2;        // Δp squared (RMS Δp = sqrt of its mean)
  std::vector<float> kl;  // per-token KL(base || candidate) estimates
  size_t same_top1 = 0;
};

}  // namespace temper::verify
