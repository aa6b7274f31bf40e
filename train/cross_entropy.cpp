// Fused, chunked cross-entropy over the output projection (see kernels.h). For each trained
// token t and each tile of vocabulary rows the online softmax keeps
//   m_t  running max of z,   S_t = Σ_v exp(z_v - m_t),
//   G_t = Σ_v exp(z_v - m_t) c'_v W_v       (c'_v = 1 - (z_v/c)², the softcap's derivative)
// and rescales S_t and G_t by exp(m_old - m_new) when the max grows. At the end
//   loss_t = m_t + log S_t - z_target,   dh_t = G_t / S_t - c'_target W_target,
// since d loss_t / d logit_v = (p_v - [v = target]) c'_v. One pass over W, two sgemms per tile.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "forward/matmul.h"
#include "train/kernels.h"

namespace temper::train {

double cross_entropy(float* dh, const float* h, const forward::Matrix& w, const int32_t* target,
                     int64_t n, float softcap, float grad_scale, std::vector<float>& scratch,
                     int64_t logit_elems) {
  const int64_t H = w.cols;
  std::fill(dh, dh + n * H, 0.0f);
  std::vector<int64_t> rows;  // the trained tokens
  for (int64_t t = 0; t < n; ++t)
    if (target[t] >= 0) rows.push_back(t);
  const int64_t m = int64_t(rows.size());
  if (m == 0) return 0;
  std::vector<float> hc(size_t(m * H)), g(size_t(m * H), 0.0f), z;
  for (int64_t i = 0; i < m; ++i) std::copy_n(h + rows[i] * H, H, &hc[i * H]);
  std::vector<float> mx(size_t(m), -INFINITY), z_target(size_t(m), 0.0f);
  std::vector<double> sum(size_t(m), 0.0);

  // An aligned f32 W comes as one tile of all V rows; the logits of a tile are cut further so
  // that at most logit_elems of them exist at once, whatever the vocabulary.
  const int64_t step = std::max<int64_t>(1, logit_elems / m);
  auto visit = [&](int64_t r0, int64_t nr, const float* tile) {
    z.resize(size_t(m * nr));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(nr), int(H), 1.0f,
                hc.data(), int(H), tile, int(H), 0.0f, z.data(), int(nr));
#pragma omp parallel for schedule(static) if (m * nr >= (1 << 14))
    for (int64_t i = 0; i < m; ++i) {
      float* zi = &z[i * nr];
      if (softcap != 0)
        for (int64_t v = 0; v < nr; ++v) zi[v] = float(softcap * std::tanh(double(zi[v]) / softcap));
      const int64_t y = target[rows[i]];
      if (y >= r0 && y < r0 + nr) z_target[i] = zi[y - r0];
      const float new_max = std::max(mx[i], *std::max_element(zi, zi + nr));
      const float rescale = mx[i] == -INFINITY ? 0.0f : std::exp(mx[i] - new_max);
      mx[i] = new_max;
      double s = 0;
      for (int64_t v = 0; v < nr; ++v) {
        const float e = std::exp(zi[v] - new_max);
        s += e;
        zi[v] = softcap != 0 ? e * (1 - (zi[v] / softcap) * (zi[v] / softcap)) : e;
      }
      sum[i] = sum[i] * rescale + s;
      if (rescale != 1.0f)
        for (int64_t e = 0; e < H; ++e) g[i * H + e] *= rescale;
    }
    // G += E · tile (outside the parallel region: OpenBLAS owns the threads)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(H), int(nr), 1.0f,
                z.data(), int(nr), tile, int(H), 1.0f, g.data(), int(H));
  };
  forward::for_each_f32_tile(w, scratch, [&](int64_t r0, int64_t nr, const float* tile) {
    for (int64_t c = 0; c < nr; c += step)
      visit(r0 + c, std::min(step, nr - c), tile + c * H);
  });

  double loss = 0;
  std::vector<float> wy(static_cast<size_t>(H));
  for (int64_t i = 0; i < m; ++i) {
    loss += double(mx[i]) + std::log(sum[i]) - double(z_target[i]);
    forward::matrix_row(wy.data(), w, target[rows[i]]);
    const float zy = z_target[i];
    const float cy = softcap != 0 ? 1 - (zy / softcap) * (zy / softcap) : 1.0f;
    const float inv = float(1.0 / sum[i]);
    float* d = dh + rows[i] * H;
    for (int64_t e = 0; e < H; ++e) d[e] = grad_scale * (g[i * H + e] * inv - cy * wy[e]);
  }
  return loss;
}

}  // namespace temper::train
