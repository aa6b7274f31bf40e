// The base model's compact reference for compare: per scored token the top-k token ids and
// log-probs, the log of the remaining probability mass, and the NLL of the true token. At
// k = 32 that is ~270 bytes per token instead of n_vocab floats.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "metrics.h"

namespace temper::verify {

class TopkStore {
 public:
  // What is kept per scored token t; saved and loaded as is by topk_store_file.h.
  struct Arrays {
    std::vector<int32_t> ids;      // size() * k, each row sorted by descending log-prob
    std::vector<float> logp;       // size() * k
    std::vector<float> log_rest;   // log(1 - sum of top-k probs); -inf when the top-k hold it all
    std::vector<double> nll;       // NLL of the true token
  };

  explicit TopkStore(int k) : k_(k) {}
  // A store with these arrays (sizes checked by the caller, topk_store_file.cpp).
  TopkStore(int k, Arrays a) : k_(k), a_(std::move(a)) {}
  int k() const { return k_; }
  size_t size() const { return a_.nll.size(); }
  const Arrays& arrays() const { return a_; }
  uint64_t bytes() const;

  // Appends one token from the base model's logits row. k is clamped to the vocabulary size.
  void add(std::span<const float> logits, int32_t target);

  double nll(size_t t) const { return a_.nll[t]; }
  int32_t top1(size_t t) const { return a_.ids[t * size_t(k_)]; }

  // KL(base || candidate) at token t from the candidate's full logits: exact over the top-k
  // ids, with the rest of both distributions merged into one bucket. By the log-sum
  // inequality this is a lower bound of the full KL, tight when the base's tail is small.
  double kl(size_t t, std::span<const float> cand_logits, double cand_lse) const;

  // Adds token t of a candidate to `s`.
  void accumulate(size_t t, std::span<const float> cand_logits, int32_t target, CandidateStats& s) const;

 private:
  int k_;
  Arrays a_;
};

}  // namespace temper::verify
