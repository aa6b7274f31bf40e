// Top-k reference log-probs of the base model and the KL / top-1 / Δp statistics against them.
#include "topk_store.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace temper::verify {
namespace {

// Sum of exp(x_i - lse) over the ids NOT in `top` (direct, to avoid 1 - sum cancellation).
double rest_mass(std::span<const float> logits, double lse, std::span<const int32_t> top) {
  thread_local std::vector<uint8_t> in_top;
  in_top.assign(logits.size(), 0);
  for (int32_t id : top) in_top[size_t(id)] = 1;
  double rest = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    if (!in_top[i]) rest += std::exp(double(logits[i]) - lse);
  return rest;
}

}  // namespace

uint64_t TopkStore::bytes() const {
  return a_.ids.size() * sizeof(int32_t) + a_.logp.size() * sizeof(float) + a_.log_rest.size() * sizeof(float) +
         a_.nll.size() * sizeof(double);
}

void TopkStore::add(std::span<const float> logits, int32_t target) {
  if (a_.nll.empty()) k_ = std::min<int>(k_, int(logits.size()));
  const double lse = log_sum_exp(logits);
  thread_local std::vector<int32_t> order;
  order.resize(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k_, order.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  const std::span<const int32_t> top(order.data(), size_t(k_));
  for (int32_t id : top) {
    a_.ids.push_back(id);
    a_.logp.push_back(float(double(logits[size_t(id)]) - lse));
  }
  const double rest = rest_mass(logits, lse, top);
  a_.log_rest.push_back(rest > 0 ? float(std::log(rest)) : -std::numeric_limits<float>::infinity());
  a_.nll.push_back(lse - double(logits[size_t(target)]));
}

double TopkStore::kl(size_t t, std::span<const float> cand_logits, double cand_lse) const {
  const std::span<const int32_t> top(&a_.ids[t * size_t(k_)], size_t(k_));
  double kl = 0;
  for (int i = 0; i < k_; ++i) {
    const double lp = a_.logp[t * size_t(k_) + size_t(i)];
    const double lq = double(cand_logits[size_t(top[size_t(i)])]) - cand_lse;
    kl += std::exp(lp) * (lp - lq);
  }
  const double log_rest_p = a_.log_rest[t];
  if (std::isfinite(log_rest_p)) {
    const double rest_q = rest_mass(cand_logits, cand_lse, top);
    kl += rest_q > 0 ? std::exp(log_rest_p) * (log_rest_p - std::log(rest_q))
                     : std::numeric_limits<double>::infinity();
  }
  // Rounding can leave a tiny negative value for identical distributions.
  return std::max(kl, 0.0);
}

void TopkStore::accumulate(size_t t, std::span<const float> cand_logits, int32_t target, CandidateStats& s) const {
  const double lse = log_sum_exp(cand_logits);
  const double nll = lse - double(cand_logits[size_t(target)]);
  s.nll.add(nll);
  s.nll_diff.add(nll - a_.nll[t]);
  const double dp = std::exp(-nll) - std::exp(-a_.nll[t]);
  s.dp.add(dp);
  s.dp2.add(dp * dp);
  s.kl.push_back(float(kl(t, cand_logits, lse)));
  if (argmax(cand_logits) == top1(t)) ++s.same_top1;
}

}  // namespace temper::verify
