// Summary statistics for eval and compare.
#include "metrics.h"

#include <algorithm>
#include <cmath>

namespace temper::verify {

double log_sum_exp(std::span<const float> row) {
  float mx = row[0];
  for (float x : row) mx = std::max(mx, x);
  double z = 0;
  for (float x : row) z += std::exp(double(x) - double(mx));
  return double(mx) + std::log(z);
}

int32_t argmax(std::span<const float> row) {
  int32_t best = 0;
  for (size_t i = 1; i < row.size(); ++i)
    if (row[i] > row[size_t(best)]) best = int32_t(i);
  return best;
}

Distribution summarize(std::vector<float>& v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (float x : v) sum += x;
  d.mean = sum / double(v.size());
  auto quantile = [&](double q) {
    const double at = q * double(v.size() - 1);
    const size_t lo = size_t(at);
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return double(v[lo]) + (at - double(lo)) * (double(v[hi]) - double(v[lo]));
  };
  d.median = quantile(0.5);
  d.p90 = quantile(0.9);
  d.p99 = quantile(0.99);
  d.max = v.back();
  return d;
}

void RunningMean::add(double x) {
  n_ += 1;
  sum_ += x;
  sum2_ += x * x;
}

MeanCI RunningMean::ci95() const {
  MeanCI c;
  if (n_ == 0) return c;
  c.mean = sum_ / double(n_);
  const double var = n_ > 1 ? std::max(0.0, (sum2_ - double(n_) * c.mean * c.mean) / double(n_ - 1)) : 0.0;
  const double half = 1.96 * std::sqrt(var / double(n_));
  c.lo = c.mean - half;
  c.hi = c.mean + half;
  return c;
}

double RunningMean::standard_error() const {
  if (n_ < 2) return 0;
  const double mean = sum_ / double(n_);
  const double var = sum2_ / double(n_) - mean * mean;
  return var > 0 ? std::sqrt(var / double(n_ - 1)) : 0;
}

}  // namespace temper::verify
