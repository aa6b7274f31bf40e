// Collecting an importance matrix from temper's own forward pass, as llama-imatrix collects it:
// a matmul observer (forward/matmul_observer.h) that sums, per weight matrix and input column,
// the squared activations, and counts the rows (per expert for MoE expert matrices, which see
// only the tokens routed to them). Used by `temper imatrix` (verify/imatrix.cpp) and by
// `quantize --target-bpw`'s full-precision run (quantize/sensitivity.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "forward/matmul_observer.h"
#include "quantize/imatrix.h"

namespace temper {

class ImatrixCollector : public forward::MatmulObserver {
 public:
  // `blk_only`: only blk.* matrices, as llama-imatrix; otherwise every named matrix (the output
  // head too, whose weights round a tied embedding for its output role).
  ImatrixCollector(const forward::Weights& w, bool blk_only) : w_(w), blk_only_(blk_only) {}
  // Which rows of the dense products of the next forward pass count (llama-imatrix skips
  // micro-batches of fewer than 16 rows); empty: every row.
  void set_dense_rows(std::vector<uint8_t> keep) { keep_ = std::move(keep); }

  void on_matmul(const forward::Matrix& w, const float* x, int64_t n) override;

  // The sums and counts, as llama-imatrix writes them (datasets and chunk counts left to fill).
  ImatrixData data() const;
  // The mean squared activation per column (sum / count, in double), as llama-quantize uses an
  // imatrix.
  Imatrix means(const std::string& dataset, uint32_t chunks) const;

 private:
  struct Entry {
    std::vector<double> sums;     // (n_mat, K)
    std::vector<int64_t> counts;  // (n_mat)
  };
  const forward::Weights& w_;
  bool blk_only_;
  std::vector<uint8_t> keep_;
  std::map<std::string, Entry> entries_;
};

}  // namespace temper
