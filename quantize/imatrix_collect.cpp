// Per-column sums of squared matmul inputs (see imatrix_collect.h). Sums are kept in double
// (llama.cpp sums in f32; the imatrix test's tolerance covers that).
#include "quantize/imatrix_collect.h"

#include <algorithm>

#include "core/error.h"

namespace temper {

void ImatrixCollector::on_matmul(const forward::Matrix& w, const float* x, int64_t n) {
  const forward::MatrixName* name = forward::find_matrix(w_, w);
  if (!name || (blk_only_ && !name->gguf_name.starts_with("blk."))) return;
  Entry& e = entries_[name->gguf_name];
  const int64_t K = w.cols;
  const int n_mat = name->expert >= 0 ? name->n_expert : 1;
  if (e.sums.empty()) {
    e.sums.assign(size_t(n_mat * K), 0.0);
    e.counts.assign(size_t(n_mat), 0);
  }
  TEMPER_CHECK(int64_t(e.sums.size()) == n_mat * K, "imatrix: '", name->gguf_name, "' seen with two sizes");
  const int m = std::max(name->expert, 0);
  double* acc = &e.sums[size_t(m * K)];
  const bool masked = name->expert < 0 && !keep_.empty();
  if (masked)
    TEMPER_CHECK(size_t(n) == keep_.size(), "imatrix: '", name->gguf_name, "' multiplied ", n, " rows, expected ",
                 keep_.size());
  for (int64_t t = 0; t < n; ++t) {
    if (masked && !keep_[size_t(t)]) continue;
    const float* r = x + t * K;
    for (int64_t j = 0; j < K; ++j) acc[j] += double(r[j]) * double(r[j]);
    ++e.counts[size_t(m)];
  }
}

ImatrixData ImatrixCollector::data() const {
  ImatrixData d;
  for (const auto& [name, e] : entries_) {
    ImatrixSums s;
    s.sums.assign(e.sums.begin(), e.sums.end());
    s.counts = e.counts;
    d.entries.emplace(name, std::move(s));
  }
  return d;
}

Imatrix ImatrixCollector::means(const std::string& dataset, uint32_t chunks) const {
  Imatrix im;
  im.file = dataset;
  im.dataset = dataset;
  im.chunks = chunks;
  for (const auto& [name, e] : entries_) {
    std::vector<float>& v = im.entries[name];
    const size_t per = e.sums.size() / e.counts.size();
    for (size_t i = 0; i < e.sums.size(); ++i)
      v.push_back(float(e.sums[i] / double(std::max<int64_t>(1, e.counts[i / per]))));
  }
  return im;
}

}  // namespace temper
