// Small-batch kernels (forward/gemv.h) on every path this CPU has, plus the forced portable
// path, against the double-precision oracle (dequantize_row, then a double dot).
//
// Error bound: the kernels use weights bit-identical to dequantize_row's (same f32 operations)
// and activations as given, so the only error is the f32 accumulation of K products w_i·x_i
// (each product rounded once, then K−1 additions in some order). Higham's bound for any
// summation order: |ŷ − y| ≤ γ_K · Σ|w_i x_i|, γ_K = K·u / (1 − K·u), u = 2^-24. We use that
// bound as is (no practical multiplier), so a kernel reading a wrong nibble, scale or
// activation fails it by orders of magnitude.
//
// The AVX2 Q4_K/Q5_K kernels factor the sub-block scale s and minimum m out of the sum
// (Σ s·(Σ q·x) − Σ m·(Σ x)), so their terms are s·q·x and m·x rather than w·x: each of the
// K weights' two terms passes through at most 1 (product) + 4 (group sum) + 2 (scale FMA,
// add) + K/16 (accumulators) + 3 (horizontal sum) roundings, the activation sums through 32,
// and the oracle's weight fl(fl(s·q) − m) differs from s·q − m by ≤ 2u(|s·q| + |m|); for
// K >= 256 all of that stays under K roundings, so the bound is γ_K·Σ(|s·q| + |m|)·|x|.
// Σ(|s·q| + |m|)·|x| is computed from the reference dequantiser on copies of the blocks with
// dmin = 0 (giving s·q) and with d = 0 (giving −m).
// The AVX-512 kernels (F16, BF16, Q8_0, Q4_0) dequantise each weight exactly as the oracle
// does, so the plain bound applies to them as is.
// Q8_0 and Q6_K factor out only the scale (d·Σ q·x): each term passes through at most
// K/8 + 12 roundings and the oracle's weight fl(d·q) is within u of d·q, so for K >= 32 the
// plain bound γ_K·Σ|w x| still covers them.
#include "forward/gemv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "forward/matmul.h"
#include "quant/quant.h"
#include "quant/quant_common.h"

namespace temper::forward {
namespace {

constexpr double kU = 0x1p-24;

// Normal weights, or heavy-tailed ones (normal / |uniform|, a few huge outliers per block) that
// stress the k-quants' scale search and the f16 range.
std::vector<float> weights(int64_t n, uint32_t seed, bool heavy) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::uniform_real_distribution<float> ud(0.02f, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = heavy ? nd(rng) / ud(rng) : nd(rng);
  return v;
}

struct Quantized {
  std::vector<uint8_t> bytes;
  Matrix m;
};

Quantized quantize(DType t, const std::vector<float>& w, int64_t N, int64_t K) {
  Quantized q;
  const size_t rb = quant::row_bytes(t, K);
  q.bytes.resize(rb * size_t(N));
  quant::quantize_rows(t, w.data(), q.bytes.data(), N, K, nullptr);
  q.m = Matrix{q.bytes.data(), t, N, K, rb};
  return q;
}

// Runs gemv on `path` for T = 1..kGemvMaxTokens (16: two register groups of 8 on AVX2) and checks every output against the oracle and the bound;
// columns past N in the wider rows (ldy = N + 3) must stay untouched.
// The oracle runs once for all paths.
void check(const Matrix& w, const std::vector<GemvPath>& paths, const std::vector<float>& x, const std::string& what) {
  const int64_t N = w.rows, K = w.cols, ldy = N + 3;
  std::vector<double> ref(size_t(kGemvMaxTokens * ldy));
  gemv_reference(ref.data(), x.data(), w, kGemvMaxTokens, ldy);
  // Σ|w_i x_i| per output, from the dequantised rows.
  std::vector<double> mag(size_t(kGemvMaxTokens * ldy));
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t r = 0; r < N; ++r) {
    quant::dequantize_row(w.dtype, w.row(r), row.data(), K);
    for (int64_t t = 0; t < kGemvMaxTokens; ++t) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += std::fabs(double(row[size_t(k)]) * x[size_t(t * K + k)]);
      mag[size_t(t * ldy + r)] = s;
    }
  }
  // Σ(|s·q| + |m|)·|x| for the factored kernels (see the top of the file).
  std::vector<double> mag_factored = mag;
  const bool factored = w.dtype == DType::kQ4_K || w.dtype == DType::kQ5_K;
  if (factored) {
    const size_t block = w.dtype == DType::kQ4_K ? sizeof(quant::BlockQ4_K) : sizeof(quant::BlockQ5_K);
    std::vector<uint8_t> scale_only(w.row_bytes), min_only(w.row_bytes);
    std::vector<float> sq(static_cast<size_t>(K)), mn(static_cast<size_t>(K));
    for (int64_t r = 0; r < N; ++r) {
      std::memcpy(scale_only.data(), w.row(r), w.row_bytes);
      std::memcpy(min_only.data(), w.row(r), w.row_bytes);
      for (size_t b = 0; b < w.row_bytes; b += block) {  // {uint16 d, dmin, ...}: f16 zero is 0x0000
        scale_only[b + 2] = scale_only[b + 3] = 0;
        min_only[b] = min_only[b + 1] = 0;
      }
      quant::dequantize_row(w.dtype, scale_only.data(), sq.data(), K);
      quant::dequantize_row(w.dtype, min_only.data(), mn.data(), K);
      for (int64_t t = 0; t < kGemvMaxTokens; ++t) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += (std::fabs(double(sq[size_t(k)])) + std::fabs(double(mn[size_t(k)]))) * std::fabs(x[size_t(t * K + k)]);
        mag_factored[size_t(t * ldy + r)] = s;
      }
    }
  }
  const double gamma = K * kU / (1 - K * kU);
  for (const GemvPath path : paths) {
    const std::vector<double>& bound_mag = factored && path == GemvPath::kAvx2 ? mag_factored : mag;
    set_gemv_path(path);
    ASSERT_EQ(gemv_path_for(w.dtype), path) << what;
    const std::string where = what + " " + gemv_path_name(path);
    for (int64_t T = 1; T <= kGemvMaxTokens; ++T) {
      std::vector<float> y(size_t(T * ldy), -7.0f);
      gemv_forward(y.data(), x.data(), w, T, ldy);
      int bad = 0;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t r = 0; r < N; ++r) {
          const size_t i = size_t(t * ldy + r);
          const double err = std::fabs(double(y[i]) - ref[i]), bound = gamma * bound_mag[i];
          if (!(err <= bound) && bad++ < 3)
            ADD_FAILURE() << where << " T=" << T << " t=" << t << " row " << r << ": got " << y[i] << " want "
                          << ref[i] << " err " << err << " > bound " << bound;
        }
        for (int64_t c = N; c < ldy; ++c) EXPECT_EQ(y[size_t(t * ldy + c)], -7.0f) << where << " wrote past N";
      }
    }
  }
  set_gemv_path(GemvPath::kAuto);
}

std::vector<GemvPath> paths_for(DType t) {
  std::vector<GemvPath> p = {GemvPath::kPortable};
  if (gemv_avx2_available() && gemv_avx2_supports(t)) p.push_back(GemvPath::kAvx2);
  if (gemv_avx512_available() && gemv_avx512_supports(t)) p.push_back(GemvPath::kAvx512);
  return p;
}

class GemvTypes : public ::testing::TestWithParam<DType> {};

TEST_P(GemvTypes, MatchesOracleWithinAccumulationBound) {
  const DType t = GetParam();
  struct Shape { int64_t N, K; };
  // K: one and two super-blocks, an odd multiple (3), and 4096 + 256 (17 super-blocks).
  // N: one row, fewer than a row chunk (16), one more than two chunks (33), 1000 (a partial last
  // chunk of 8).
  const Shape shapes[] = {{1, 256}, {3, 512}, {33, 768}, {1000, 256}, {1000, 512}, {3, 4352}, {17, 4352}};
  uint32_t seed = 1;
  for (const bool heavy : {false, true}) {
    for (const Shape s : shapes) {
      const auto wf = weights(s.N * s.K, seed++, heavy);
      const auto q = quantize(t, wf, s.N, s.K);
      const auto x = weights(kGemvMaxTokens * s.K, seed++, heavy);
      const std::string what = std::string(dtype_name(t)) + (heavy ? " heavy" : " normal") +
                               " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K);
      check(q.m, paths_for(t), x, what);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GemvTypes,
                         ::testing::Values(DType::kQ4_K, DType::kQ6_K, DType::kQ8_0, DType::kF16, DType::kBF16,
                                           DType::kF32, DType::kQ5_K, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                                           DType::kQ5_1, DType::kQ2_K, DType::kQ3_K, DType::kIQ4_XS,
                                           DType::kIQ4_NL),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Plain float types have no blocks: K need not be a multiple of 8 (the AVX2 tail).
TEST(Gemv, FloatTypesWithRaggedK) {
  for (const DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const int64_t K : {1, 7, 13, 259}) {
      const auto q = quantize(t, weights(5 * K, 100 + uint32_t(K), false), 5, K);
      const auto x = weights(kGemvMaxTokens * K, 200 + uint32_t(K), false);
      check(q.m, paths_for(t), x, std::string(dtype_name(t)) + " K=" + std::to_string(K));
    }
  }
}

TEST(Gemv, EnvironmentForcesPortablePath) {
  setenv("TEMPER_PORTABLE_KERNELS", "1", 1);
  EXPECT_EQ(gemv_path_for(DType::kQ4_K), GemvPath::kPortable);
  unsetenv("TEMPER_PORTABLE_KERNELS");
  setenv("TEMPER_GEMV_PATH", "portable", 1);
  EXPECT_EQ(gemv_path_for(DType::kQ8_0), GemvPath::kPortable);
  setenv("TEMPER_GEMV_PATH", "sse9", 1);
  EXPECT_THROW(gemv_path_for(DType::kQ8_0), Error);
  unsetenv("TEMPER_GEMV_PATH");
  EXPECT_EQ(gemv_path_for(DType::kQ4_K), gemv_avx2_available() ? GemvPath::kAvx2 : GemvPath::kPortable);
}

// The automatic choice is the best path the CPU has for the type; a type the AVX-512 path lacks
// falls to AVX2.
TEST(Gemv, AutoPicksTheBestAvailablePath) {
  if (!gemv_avx512_available()) {
    EXPECT_THROW(set_gemv_path(GemvPath::kAvx512), Error);
    // Without AVX-512 the types that prefer it fall back to AVX2 (where the CPU has it).
    if (gemv_avx2_available()) {
      EXPECT_EQ(gemv_path_for(DType::kQ8_0), GemvPath::kAvx2);
      EXPECT_EQ(gemv_path_for(DType::kQ4_K), GemvPath::kAvx2);
    }
    GTEST_SKIP() << "this CPU lacks AVX-512 F/BW/VL: the AVX-512 path was not tested";
  }
  EXPECT_EQ(gemv_path_for(DType::kQ8_0), GemvPath::kAvx512);
  EXPECT_EQ(gemv_path_for(DType::kQ6_K), GemvPath::kAvx2);
  EXPECT_EQ(gemv_path_for(DType::kF32), GemvPath::kAvx2);
  setenv("TEMPER_GEMV_PATH", "avx2", 1);
  EXPECT_EQ(gemv_path_for(DType::kQ8_0), GemvPath::kAvx2);
  unsetenv("TEMPER_GEMV_PATH");
}

// Every stored type the runtime reads has an AVX2 kernel (none silently falls back to the
// portable path on an AVX2 machine).
TEST(Gemv, EveryStoredTypeHasAnAvx2Kernel) {
  for (const DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                        DType::kQ5_1, DType::kQ8_0, DType::kIQ4_NL, DType::kIQ4_XS, DType::kQ2_K, DType::kQ3_K,
                        DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
    EXPECT_TRUE(gemv_avx2_supports(t)) << dtype_name(t);
  if (!gemv_avx2_available()) GTEST_SKIP() << "this CPU lacks AVX2/FMA/F16C: only the portable path ran";
}

// matmul_forward sends short batches to gemv: same result as calling it directly.
TEST(Gemv, MatmulForwardUsesItForShortBatches) {
  const int64_t N = 37, K = 512;
  const auto q = quantize(DType::kQ4_K, weights(N * K, 7, false), N, K);
  const auto x = weights(3 * K, 8, false);
  std::vector<float> a(size_t(3 * N)), b(size_t(3 * N));
  std::vector<float> scratch;
  matmul_forward(a.data(), x.data(), q.m, 3, N, scratch);
  gemv_forward(b.data(), x.data(), q.m, 3, N);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace temper::forward
