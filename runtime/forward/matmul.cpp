// Matrix product against stored weights (see matmul.h). The only file that includes cblas.h.
#include "forward/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstdint>

#include "forward/gemv.h"
#include "forward/matmul_observer.h"
#include "quant/quant.h"

namespace temper::forward {

// f32 elements of one dequantised tile: 4 MiB stays in L2/L3 while sgemm reuses it for every
// token row, and is large enough that sgemm's own blocking is efficient.
constexpr int64_t kTileElems = int64_t{1} << 20;

namespace {
thread_local MatmulObserver* t_observer = nullptr;
}  // namespace

MatmulObserver* matmul_observer() { return t_observer; }
ScopedMatmulObserver::ScopedMatmulObserver(MatmulObserver* o) : previous_(t_observer) { t_observer = o; }
ScopedMatmulObserver::~ScopedMatmulObserver() { t_observer = previous_; }

void matrix_row(float* out, const Matrix& w, int64_t r) {
  quant::dequantize_row(w.dtype, w.row(r), out, w.cols);
}

void for_each_f32_tile(const Matrix& w, std::vector<float>& scratch,
                       const std::function<void(int64_t, int64_t, const float*)>& fn) {
  const int64_t K = w.cols, N = w.rows;
  if (N == 0) return;
  if (w.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(w.data) % 4 == 0) {
    fn(0, N, reinterpret_cast<const float*>(w.data));
    return;
  }
  const int64_t tile_rows = std::clamp<int64_t>(kTileElems / std::max<int64_t>(K, 1), 1, N);
  scratch.resize(size_t(tile_rows * K));
  for (int64_t r0 = 0; r0 < N; r0 += tile_rows) {
    const int64_t nr = std::min(tile_rows, N - r0);
    float* tile = scratch.data();
#pragma omp parallel for schedule(static) if (nr * K >= (1 << 15))
    for (int64_t r = 0; r < nr; ++r) quant::dequantize_row(w.dtype, w.row(r0 + r), tile + r * K, K);
    // Outside the parallel region: OpenBLAS uses the same OpenMP pool.
    fn(r0, nr, tile);
  }
}

void matmul_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy,
                    std::vector<float>& scratch) {
  const int64_t K = w.cols;
  if (n_tokens == 0 || w.rows == 0) return;
  if (t_observer) t_observer->on_matmul(w, x, n_tokens);
  // Decode and short batches: one pass over the stored blocks (gemv.h). Larger batches reuse
  // each dequantised tile for many tokens, where sgemm wins.
  if (n_tokens <= kGemvMaxTokens) {
    gemv_forward(y, x, w, n_tokens, ldy);
    return;
  }
  for_each_f32_tile(w, scratch, [&](int64_t r0, int64_t nr, const float* tile) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n_tokens), int(nr), int(K), 1.0f, x,
                int(K), tile, int(K), 0.0f, y + r0, int(ldy));
  });
}

}  // namespace temper::forward
