// fp32 backward kernels (see kernels.h): products through OpenBLAS sgemm outside any parallel
// region, element- and row-wise kernels with OpenMP over independent rows (schedule(static):
// each thread writes only its own rows), row sums in double.
#include "train/kernels.h"

#include <cblas.h>

#include <cmath>

#include "forward/matmul.h"
#include "train/ref/backward_scalar.h"

namespace temper::train {

// Fewer elements than this are not worth a parallel region.
constexpr int64_t kMinParallelElems = 1 << 14;

void matmul_backward(float* dx, const float* dy, int64_t ldy, const forward::Matrix& w,
                     int64_t n, bool accumulate, std::vector<float>& scratch) {
  const int64_t K = w.cols;
  if (n == 0) return;
  bool first = true;
  forward::for_each_f32_tile(w, scratch, [&](int64_t r0, int64_t nr, const float* tile) {
    // dx += dy[:, r0:r0+nr] · tile
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(K), int(nr), 1.0f,
                dy + r0, int(ldy), tile, int(K), first && !accumulate ? 0.0f : 1.0f, dx, int(K));
    first = false;
  });
}

void lora_forward(float* y, int64_t ldy, float* u, const float* x, const float* a,
                  const float* b, float s, int64_t n, int64_t K, int64_t N, int r) {
  if (n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), r, int(K), 1.0f, x, int(K), a,
              int(K), 0.0f, u, r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(N), r, s, u, r, b, r, 1.0f, y,
              int(ldy));
}

void lora_backward(float* dx, float* da, float* db, float* du, const float* dy, int64_t ldy,
                   const float* x, const float* u, const float* a, const float* b, float s,
                   int64_t n, int64_t K, int64_t N, int r) {
  if (n == 0) return;
  // du = s · dy · B
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), r, int(N), s, dy, int(ldy), b,
              r, 0.0f, du, r);
  // dB += s · dyᵀ · u
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), r, int(n), s, dy, int(ldy), u, r,
              1.0f, db, r);
  // dA += duᵀ · x
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, int(K), int(n), 1.0f, du, r, x, int(K),
              1.0f, da, int(K));
  // dx += du · A
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(K), r, 1.0f, du, r, a,
              int(K), 1.0f, dx, int(K));
}

void rmsnorm_backward(float* dinp, const float* dout, const float* inp, const float* weight,
                      float weight_offset, int64_t n_rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if (n_rows * dim >= kMinParallelElems)
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = inp + r * dim;
    const float* dy = dout + r * dim;
    double ss = 0, gx = 0;
    for (int i = 0; i < dim; ++i) {
      ss += double(x[i]) * x[i];
      gx += double(dy[i]) * (weight ? weight_offset + weight[i] : 1.0f) * x[i];
    }
    const double rstd = 1.0 / std::sqrt(ss / dim + double(eps));
    const float a = float(rstd), c = float(rstd * rstd * rstd * gx / dim);
    float* dx = dinp + r * dim;
    for (int i = 0; i < dim; ++i)
      dx[i] += a * (dy[i] * (weight ? weight_offset + weight[i] : 1.0f)) - c * x[i];
  }
}

void rope_backward(float* dx, const int32_t* positions, int64_t n, int n_head,
                   int64_t row_stride, const forward::RopeParams& p) {
  std::vector<int32_t> neg(positions, positions + n);
  for (int32_t& v : neg) v = -v;
  forward::rope_forward(dx, neg.data(), n, n_head, row_stride, p);
}

void glu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                  const float* up, int64_t n, Activation act) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelElems)
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    dgate[i] = float(double(dout[i]) * up[i] * ref::activation_grad(g, act));
    dup[i] = float(double(dout[i]) * ref::activation(g, act));
  }
}

}  // namespace temper::train
