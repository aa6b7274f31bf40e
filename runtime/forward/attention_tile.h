// Building blocks of the tiled attention kernels: the forward (forward/attention.cpp) and the
// training backward (train/attention_backward.cpp). Tile products go to OpenBLAS's sgemm
// (kernel chosen at run time) or, for tiles of a few rows, to plain loops the compiler
// vectorises for whatever ISA the build targets (no intrinsics; the innermost loop runs over
// a contiguous dimension), as does the exp. Internal to those two files.
//
// A tile is (query rows) x (keys): rows are (token, head) pairs, and for GQA the heads that
// share one KV head are stacked as rows of one tile, so each K/V tile is read once for all of
// them. Tiles are at most kRows x kKeys scores, in per-thread buffers.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace temper::forward::attention_tile {

// 64 keys: a score row is 256 bytes (4 AVX-512 / 8 AVX2 registers), and a 64-row tile of
// scores (16 KiB) plus its Q rows and output rows (64 x HD floats each, 32 KiB at HD 128)
// stay in L1/L2 while K and V stream through once per tile.
inline constexpr int kKeys = 64;
inline constexpr int kRows = 64;

// exp(x) in f32 that the compiler can vectorise (std::exp is a libm call per element):
// Cody-Waite reduction x = n ln2 + r (ln2 split in two so n·ln2_hi is exact for |n| < 2^9),
// Cephes' degree-6 minimax polynomial for e^r on |r| <= ln2/2 (relative error < 2^-23 per
// Cephes' expf), times 2^n built in the exponent bits. x is clamped to [-87, 88], where 2^n
// is a normal number: exp(-87) = 1.6e-38 stands for 0, harmless next to the tile's largest
// weight exp(0) = 1. Masked scores never reach it (callers write 0 for them).
// Needs -fno-trapping-math to vectorise (the clamps' float compares), set in CMake.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float fn = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(fn) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// C (M x N, row stride ldc) = A (M x K) · Bᵀ, B given as (N x K) rows: dot products along
// the contiguous K. Four rows of A per pass share each load of a B row.
inline void mul_abt(float* __restrict C, int64_t ldc, const float* __restrict A, int64_t lda,
                    const float* __restrict B, int64_t ldb, int M, int N, int K) {
  int i = 0;
  for (; i + 4 <= M; i += 4) {
    const float* a0 = A + i * lda;
    const float* a1 = a0 + lda;
    const float* a2 = a1 + lda;
    const float* a3 = a2 + lda;
    for (int j = 0; j < N; ++j) {
      const float* b = B + j * ldb;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int d = 0; d < K; ++d) {
        s0 += a0[d] * b[d];
        s1 += a1[d] * b[d];
        s2 += a2[d] * b[d];
        s3 += a3[d] * b[d];
      }
      C[i * ldc + j] = s0;
      C[(i + 1) * ldc + j] = s1;
      C[(i + 2) * ldc + j] = s2;
      C[(i + 3) * ldc + j] = s3;
    }
  }
  for (; i < M; ++i) {
    const float* a = A + i * lda;
    for (int j = 0; j < N; ++j) {
      const float* b = B + j * ldb;
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int d = 0; d < K; ++d) s += a[d] * b[d];
      C[i * ldc + j] = s;
    }
  }
}

// C (M x N, row stride ldc) += A · B with A(i, k) = A[i·a_row + k·a_col] (so a transposed A
// is a swap of strides) and B (K x N) rows: each C row gets a_ik times B row k, along the
// contiguous N. Four C rows per pass share each load of a B row.
inline void mul_add_ab(float* __restrict C, int64_t ldc, const float* __restrict A,
                       int64_t a_row, int64_t a_col, const float* __restrict B, int64_t ldb,
                       int M, int N, int K) {
  int i = 0;
  for (; i + 4 <= M; i += 4) {
    float* c0 = C + i * ldc;
    float* c1 = c0 + ldc;
    float* c2 = c1 + ldc;
    float* c3 = c2 + ldc;
    const float* a = A + i * a_row;
    for (int k = 0; k < K; ++k) {
      const float x0 = a[k * a_col], x1 = a[a_row + k * a_col], x2 = a[2 * a_row + k * a_col],
                  x3 = a[3 * a_row + k * a_col];
      if (x0 == 0 && x1 == 0 && x2 == 0 && x3 == 0) continue;  // masked keys: P = 0
      const float* b = B + k * ldb;
#pragma omp simd
      for (int j = 0; j < N; ++j) {
        c0[j] += x0 * b[j];
        c1[j] += x1 * b[j];
        c2[j] += x2 * b[j];
        c3[j] += x3 * b[j];
      }
    }
  }
  for (; i < M; ++i) {
    float* c = C + i * ldc;
    const float* a = A + i * a_row;
    for (int k = 0; k < K; ++k) {
      const float x = a[k * a_col];
      if (x == 0) continue;
      const float* b = B + k * ldb;
#pragma omp simd
      for (int j = 0; j < N; ++j) c[j] += x * b[j];
    }
  }
}

// Tiles with at least this many rows go to OpenBLAS's sgemm (cblas, single-threaded inside
// our OpenMP region; it picks its kernel for the CPU at run time): on a 63 x 64 x 128 tile it
// ran at 77 GFLOP/s against 47 for the loops above built with -march=native, and 39 against
// 19-30 with -march=x86-64-v3. Below it (decoding one token: rows = the group's heads) the
// call overhead dominates and the loops win.
inline constexpr int kBlasRows = 8;

// C (M x N) = alpha A Bᵀ, A (M x K) and B (N x K) row-major with the given row strides.
inline void product_abt(float* C, int ldc, const float* A, int lda, const float* B,
                        int64_t ldb, int M, int N, int K, float alpha) {
  if (M >= kBlasRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, A, lda, B, int(ldb),
                0.0f, C, ldc);
    return;
  }
  mul_abt(C, ldc, A, lda, B, ldb, M, N, K);
  if (alpha != 1.0f)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[int64_t(i) * ldc + j] *= alpha;
}

// C (M x N) += A B, A (M x K) and B (K x N) row-major with the given row strides.
inline void product_add_ab(float* C, int ldc, const float* A, int lda, const float* B,
                           int64_t ldb, int M, int N, int K) {
  if (M >= kBlasRows)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, int(ldb),
                1.0f, C, ldc);
  else
    mul_add_ab(C, ldc, A, lda, 1, B, ldb, M, N, K);
}

// Copies `rows` rows of `width` floats at stride `ld` into a packed buffer.
inline void copy_rows(float* __restrict dst, const float* __restrict src, int64_t ld, int rows,
                      int width) {
  for (int r = 0; r < rows; ++r) std::memcpy(dst + int64_t(r) * width, src + r * ld,
                                             sizeof(float) * size_t(width));
}

}  // namespace temper::forward::attention_tile
