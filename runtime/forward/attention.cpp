// Attention over the KV cache (see layers.h), tiled the FlashAttention way: a tile of query
// rows (tokens x the heads that share one KV head) against blocks of kKeys keys, scores
// S = Q Kᵀ for the tile, an online softmax per row (running max m and denominator l in f32,
// earlier sums rescaled by exp(m_old - m_new) when the max grows), O += P V. Tiles wholly
// outside a row's visible range are skipped; partly visible ones are masked per element.
// Never more than kRows x kKeys scores at once (attention_tile.h), no T x T storage.
// Tasks are (query tile, head group) pairs, independent outputs, so they are the parallel loop.
// The scalar oracle is forward/attention_reference.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "forward/attention_tile.h"
#include "forward/layers.h"

namespace temper::forward {

namespace at = attention_tile;

void attention_forward(float* out, const float* q, const float* k_cache, const float* v_cache,
                       int64_t n_tokens, int64_t pos0, int n_head, int n_head_kv, int head_dim,
                       int window, float scale) {
  attention_forward_masked(out, nullptr, q, k_cache, v_cache, nullptr, n_tokens, pos0, n_head,
                           n_head_kv, head_dim, window, scale);
}

void attention_forward_masked(float* out, float* lse, const float* q, const float* k_cache,
                              const float* v_cache, const int32_t* first_key, int64_t n_tokens,
                              int64_t pos0, int n_head, int n_head_kv, int head_dim, int window,
                              float scale) {
  const int group = n_head / n_head_kv, HD = head_dim;
  const int64_t qs = int64_t(n_head) * HD, kvs = int64_t(n_head_kv) * HD;
  // Below ~64k multiply-adds a parallel region costs more than it saves.
  const bool parallel =
      n_tokens * n_head * (pos0 + n_tokens) * head_dim >= (int64_t{1} << 16);
  const int threads = parallel ? omp_get_max_threads() : 1;
  // Tokens per tile: kRows rows, fewer under a short window (rows far apart see disjoint keys).
  auto tokens_per_tile = [&](int heads) {
    int64_t tokens = std::max(1, at::kRows / heads);
    return window > 0 ? std::min<int64_t>(tokens, std::max(window, 4)) : tokens;
  };
  auto tiles = [&](int heads) {
    const int64_t tokens = tokens_per_tile(heads);
    return (n_tokens + tokens - 1) / tokens * (n_head / heads);
  };
  // Heads per tile: the whole group shares each K/V tile; with too few tiles to keep every
  // thread busy (decoding one token with few KV heads) the group is split in equal parts.
  int heads = group;
  while (tiles(heads) < threads && heads % 2 == 0) heads /= 2;
  const int64_t tile_tokens = tokens_per_tile(heads);
  const int chunks = n_head / heads;
  const int64_t n_tiles = tiles(heads);

#pragma omp parallel if (parallel)
  {
    const int max_rows = int(tile_tokens) * heads;
    std::vector<float> qt(static_cast<size_t>(max_rows) * HD), o(static_cast<size_t>(max_rows) * HD),
        s(static_cast<size_t>(max_rows) * at::kKeys), m(static_cast<size_t>(max_rows)),
        l(static_cast<size_t>(max_rows));
    std::vector<int64_t> first(static_cast<size_t>(tile_tokens));
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      const int64_t t0 = tile / chunks * tile_tokens;
      const int h0 = int(tile % chunks) * heads;
      const int nt = int(std::min(tile_tokens, n_tokens - t0)), rows = nt * heads;
      const int64_t kv_off = int64_t(h0 / group) * HD;
      // Row r = (token t0 + r / heads, head h0 + r % heads); token t sees keys
      // [first[t], pos0 + t0 + t].
      at::copy_rows(qt.data(), q + t0 * qs + int64_t(h0) * HD, qs, nt, heads * HD);
      int64_t lo = pos0 + t0;
      for (int t = 0; t < nt; ++t) {
        const int64_t q_pos = pos0 + t0 + t;
        int64_t f = window > 0 ? std::max<int64_t>(0, q_pos - window + 1) : 0;
        if (first_key) f = std::max<int64_t>(f, first_key[t0 + t]);
        first[t] = f;
        lo = std::min(lo, f);
      }
      const int64_t hi = pos0 + t0 + nt;  // one past the last visible key
      std::fill(o.begin(), o.begin() + int64_t(rows) * HD, 0.0f);
      std::fill(m.begin(), m.begin() + rows, -INFINITY);
      std::fill(l.begin(), l.begin() + rows, 0.0f);
      for (int64_t j0 = lo; j0 < hi; j0 += at::kKeys) {
        const int nk = int(std::min<int64_t>(at::kKeys, hi - j0));
        bool any = false;
        for (int t = 0; t < nt && !any; ++t) any = first[t] < j0 + nk && pos0 + t0 + t >= j0;
        if (!any) continue;  // a gap between packed examples: no row sees these keys
        // S = scale Q Kᵀ (rows x nk); K rows read in place (row stride kvs).
        at::product_abt(s.data(), at::kKeys, qt.data(), HD, k_cache + j0 * kvs + kv_off, kvs,
                        rows, nk, HD, scale);
        for (int r = 0; r < rows; ++r) {
          const int t = r / heads;
          // Visible columns [a, b) of this row in the tile; the others get P = 0.
          const int a = int(std::clamp<int64_t>(first[t] - j0, 0, nk));
          const int b = int(std::clamp<int64_t>(pos0 + t0 + t + 1 - j0, 0, nk));
          float* sr = s.data() + int64_t(r) * at::kKeys;
          if (a >= b) {
            std::fill(sr, sr + nk, 0.0f);
            continue;
          }
          float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
          for (int j = a; j < b; ++j) mx = std::max(mx, sr[j]);
          const float m_new = std::max(m[r], mx);
          // The running-max rescale: earlier terms were exp(s - m_old).
          const float alpha = m[r] == -INFINITY ? 0.0f : at::exp_approx(m[r] - m_new);
          float sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int j = 0; j < nk; ++j) {
            const float p = j >= a && j < b ? at::exp_approx(sr[j] - m_new) : 0.0f;
            sr[j] = p;
            sum += p;
          }
          l[r] = l[r] * alpha + sum;
          m[r] = m_new;
          if (alpha != 1.0f) {
            float* orow = o.data() + int64_t(r) * HD;
#pragma omp simd
            for (int d = 0; d < HD; ++d) orow[d] *= alpha;
          }
        }
        // O += P V (rows x HD).
        at::product_add_ab(o.data(), HD, s.data(), at::kKeys, v_cache + j0 * kvs + kv_off, kvs,
                           rows, HD, nk);
      }
      for (int r = 0; r < rows; ++r) {
        const int t = r / heads, h = h0 + r % heads;
        float* dst = out + (t0 + t) * qs + int64_t(h) * HD;
        const float inv = 1.0f / l[r];
        for (int d = 0; d < HD; ++d) dst[d] = o[int64_t(r) * HD + d] * inv;
        if (lse) lse[(t0 + t) * n_head + h] = m[r] + std::log(l[r]);
      }
    }
  }
}

}  // namespace temper::forward
