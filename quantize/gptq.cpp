// GPTQ with ggml's block scales (see gptq.h). The loop is GPTQ's "lazy batch" form: within a
// batch of B columns each row's error is pushed onto the batch's later columns directly; the
// batch's errors reach the columns after it in one GEMM.
#include "quantize/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "quant/quant.h"
#include "quantize/block_codes.h"

extern "C" {
// LAPACK (OpenBLAS ships it): Cholesky factorisation and inverse from it, column-major.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
}

namespace temper {
namespace {

// Upper U (row-major) with U ᵀU = (H + λI)⁻¹: GPTQ's torch.linalg.cholesky(Hinv, upper=True).
// H is symmetric, so a column-major 'L' factor read row-major is the upper factor. Raises the
// damping tenfold until the factorisation succeeds (a rank-deficient H from few tokens).
std::vector<double> inverse_cholesky_upper(const std::vector<double>& h, int64_t K, double damp) {
  double mean_diag = 0;
  for (int64_t j = 0; j < K; ++j) mean_diag += h[size_t(j * K + j)];
  mean_diag = mean_diag > 0 ? mean_diag / double(K) : 1.0;
  const int n = int(K);
  for (int attempt = 0; attempt < 6; ++attempt, damp *= 10) {
    std::vector<double> a = h;
    for (int64_t j = 0; j < K; ++j) {
      double& d = a[size_t(j * K + j)];
      if (d <= 0) d = mean_diag;  // a column no token touched: its rounding costs nothing
      d += damp * mean_diag;
    }
    int info = 0;
    dpotrf_("L", &n, a.data(), &n, &info);
    if (info != 0) continue;
    dpotri_("L", &n, a.data(), &n, &info);
    if (info != 0) continue;
    for (int64_t i = 0; i < K; ++i)  // row-major upper triangle holds H⁻¹; mirror it
      for (int64_t j = 0; j < i; ++j) a[size_t(i * K + j)] = a[size_t(j * K + i)];
    dpotrf_("L", &n, a.data(), &n, &info);
    if (info != 0) continue;
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < i; ++j) a[size_t(i * K + j)] = 0;
    return a;
  }
  fail("GPTQ: the inputs' second-moment matrix (", K, " columns) is not positive definite even with damping");
}

// The code whose grid value a·g(c) + b is nearest to w.
uint8_t nearest_code(float w, float a, float b, const float* grid, int n_codes, bool uniform) {
  if (a == 0) return 0;
  if (uniform) {
    const float c = std::nearbyint((w - b) / a);
    return uint8_t(std::clamp(c, 0.0f, float(n_codes - 1)));
  }
  int best = 0;
  float best_e = INFINITY;
  for (int c = 0; c < n_codes; ++c) {
    const float e = std::fabs(w - (a * grid[c] + b));
    if (e < best_e) best_e = e, best = c;
  }
  return uint8_t(best);
}

}  // namespace

double output_error(DType t, const float* w, const uint8_t* q, int64_t N, int64_t K, const std::vector<double>& h) {
  const size_t rb = quant::row_bytes(t, K);
  std::vector<float> e(size_t(N * K)), hf(h.begin(), h.end()), eh(size_t(N * K));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    float* er = &e[size_t(r * K)];
    quant::dequantize_row(t, q + size_t(r) * rb, er, K);
    for (int64_t j = 0; j < K; ++j) er[j] = w[r * K + j] - er[j];
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(N), int(K), int(K), 1.0f, e.data(), int(K), hf.data(),
              int(K), 0.0f, eh.data(), int(K));
  double total = 0;
  for (size_t i = 0; i < e.size(); ++i) total += double(e[i]) * double(eh[i]);
  return total / double(std::max<int64_t>(N, 1));
}

GptqResult gptq_quantize(DType t, const float* w_in, int64_t N, int64_t K, const std::vector<double>& h,
                         const GptqOptions& opt) {
  TEMPER_CHECK(quant::has_block_codes(t), "calibrated quantization cannot round to ", dtype_name(t));
  const int bs = dtype_traits(t).block_elems;
  TEMPER_CHECK(K % bs == 0 && int64_t(h.size()) == K * K, "GPTQ: ", K, " columns do not fit ", dtype_name(t));
  const size_t rb = quant::row_bytes(t, K), block_bytes = size_t(dtype_traits(t).block_bytes);
  const int n_codes = quant::block_code_count(t);
  const bool uniform = t != DType::kIQ4_NL && t != DType::kIQ4_XS;
  std::vector<float> grid(static_cast<size_t>(n_codes));
  for (int c = 0; c < n_codes; ++c) grid[size_t(c)] = quant::block_code_grid(t, c);
  std::vector<float> imatrix(static_cast<size_t>(K));
  for (int64_t j = 0; j < K; ++j) imatrix[size_t(j)] = float(std::max(h[size_t(j * K + j)], 0.0));

  GptqResult res;
  // ggml's own importance-weighted rounding: the candidate to beat.
  std::vector<uint8_t> plain(rb * size_t(N));
  quant::quantize_rows(t, w_in, plain.data(), N, K, imatrix.data());
  res.error_plain = output_error(t, w_in, plain.data(), N, K, h);

  const std::vector<double> U = inverse_cholesky_upper(h, K, opt.damp);
  const std::vector<float> Uf(U.begin(), U.end());
  // Batch width: whole ggml blocks, ≥ 128 columns (GPTQ's default blocksize).
  const int64_t B = std::min<int64_t>(K, (std::max(128, bs) + bs - 1) / bs * bs);
  // Pass 1 chooses each block's scales from the weights as updated when the block starts; a
  // later pass from the values its columns had when they were rounded in the pass before (with
  // the feedback from the block's own columns), closer to what the codes then represent.
  std::vector<float> seen(size_t(N * K)), scale_src;
  std::vector<uint8_t> best;
  double best_error = INFINITY;
  for (int pass = 0; pass < std::max(1, opt.passes); ++pass) {
    std::vector<float> W(w_in, w_in + N * K), err(size_t(N * B));
    std::vector<uint8_t> bytes(rb * size_t(N)), codes(size_t(N * K));
    for (int64_t i1 = 0; i1 < K; i1 += B) {
      const int64_t i2 = std::min(K, i1 + B), nb = i2 - i1;
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < N; ++r) {
        float* wr = &W[size_t(r * K)];
        float a[256], b[256];  // the current block's grid (bs <= 256)
        for (int64_t i = i1; i < i2; ++i) {
          const int64_t o = i % bs;
          uint8_t* block = bytes.data() + size_t(r) * rb + size_t(i / bs) * block_bytes;
          if (o == 0) {  // scales from the error-updated weights of the whole block
            const float* src = scale_src.empty() ? wr + i : &scale_src[size_t(r * K + i)];
            quant::quantize_rows(t, src, block, 1, bs, imatrix.data() + i);
            quant::block_grid(t, block, a, b);
          }
          const uint8_t c = nearest_code(wr[i], a[o], b[o], grid.data(), n_codes, uniform);
          codes[size_t(r * K + i)] = c;
          seen[size_t(r * K + i)] = wr[i];
          const float e = (wr[i] - (a[o] * grid[c] + b[o])) / Uf[size_t(i * K + i)];
          const float* u = &Uf[size_t(i * K)];
          for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * u[j];
          err[size_t(r * nb + (i - i1))] = e;
        }
      }
      if (i2 < K)  // W[:, i2:] -= Err · U[i1:i2, i2:]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(N), int(K - i2), int(nb), -1.0f, err.data(), int(nb),
                    &Uf[size_t(i1 * K + i2)], int(K), 1.0f, &W[size_t(i2)], int(K));
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; ++r)
      for (int64_t k0 = 0; k0 < K; k0 += bs)
        quant::set_block_codes(t, bytes.data() + size_t(r) * rb + size_t(k0 / bs) * block_bytes,
                               {&codes[size_t(r * K + k0)], size_t(bs)});
    const double e = output_error(t, w_in, bytes.data(), N, K, h);
    if (e < best_error) best_error = e, best = std::move(bytes);
    scale_src = seen;
  }
  res.error_gptq = best_error;
  res.used_gptq = res.error_gptq < res.error_plain;
  res.bytes = res.used_gptq ? std::move(best) : std::move(plain);
  return res;
}

}  // namespace temper
