// The scalar reference of the attention forward (forward::attention_forward_masked, see
// layers.h): the implementation the runtime used before the tiled kernel, kept verbatim as its
// oracle. One (token, head) pair at a time, key by key, double denominator and accumulators.
// Same contract and arguments as attention_forward_masked. Tests only; never optimised.
#include "forward/attention_reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace temper::forward {

void attention_forward_reference(float* out, float* lse, const float* q, const float* k_cache,
                               const float* v_cache, const int32_t* first_key, int64_t n_tokens,
                               int64_t pos0, int n_head, int n_head_kv, int head_dim, int window,
                               float scale) {
  const int group = n_head / n_head_kv;
  const int64_t q_stride = int64_t(n_head) * head_dim;
  const int64_t kv_stride = int64_t(n_head_kv) * head_dim;
  const int64_t n_pairs = n_tokens * n_head;
  // Below ~64k multiply-adds a parallel region costs more than it saves.
  const bool parallel = n_pairs * (pos0 + n_tokens) * head_dim >= (int64_t{1} << 16);
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(pos0 + n_tokens));
    std::vector<double> acc(static_cast<size_t>(head_dim));
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < n_pairs; ++pair) {
      const int64_t t = pair / n_head;
      const int h = int(pair % n_head);
      const int64_t q_pos = pos0 + t;
      int64_t first = window > 0 ? std::max<int64_t>(0, q_pos - window + 1) : 0;
      if (first_key) first = std::max<int64_t>(first, first_key[t]);
      const float* qv = q + t * q_stride + int64_t(h) * head_dim;
      const int64_t kv_off = int64_t(h / group) * head_dim;
      float mx = -INFINITY;
      for (int64_t p = first; p <= q_pos; ++p) {
        const float* kv = k_cache + p * kv_stride + kv_off;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < head_dim; ++i) dot += qv[i] * kv[i];
        scores[p] = dot * scale;
        mx = std::max(mx, scores[p]);
      }
      double denom = 0;
      for (int64_t p = first; p <= q_pos; ++p) {
        scores[p] = std::exp(scores[p] - mx);
        denom += scores[p];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = first; p <= q_pos; ++p) {
        const float* vv = v_cache + p * kv_stride + kv_off;
        const double s = scores[p];
        for (int i = 0; i < head_dim; ++i) acc[i] += s * vv[i];
      }
      float* o = out + t * q_stride + int64_t(h) * head_dim;
      for (int i = 0; i < head_dim; ++i) o[i] = float(acc[i] / denom);
      if (lse) lse[t * n_head + h] = float(double(mx) + std::log(denom));
    }
  }
}

}  // namespace temper::forward
