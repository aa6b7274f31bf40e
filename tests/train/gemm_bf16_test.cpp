// The bf16 products of the trainer (train/gemm_bf16.h) against double-precision scalar
// references, on awkward shapes (one row, one column, tails, K not a multiple of 32, two
// weight tiles with a short last one) and every kind of stored type (f32, f16, bf16 in place,
// Q8_0, Q4_0, Q4_K, Q6_K). Two checks per product:
//  1. Rounding: against the double product of the inputs rounded to bf16 by core/half.h's
//     f32_to_bf16 (round to nearest, ties to even). What is left is f32 accumulation, so this
//     bound is tight and catches a kernel that truncates or rounds the wrong operand.
//  2. Accuracy: against the double product of the unrounded inputs, within the bound the
//     bf16 roundings and the f32 accumulation allow (derived below).
// Skipped, saying so, on a CPU without native bf16 dot products.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "grad_check.h"
#include "stored_matrix.h"
#include "quant/quant.h"
#include "train/gemm_bf16.h"

namespace temper::train {
namespace {

using test::kEps32;
using test::randn_f32;
using test::to_f32;

// Unit roundoff of bf16 (8 significant bits): |bf16(v) - v| <= 2^-8 |v|.
constexpr double kUnitBf16 = 0x1p-8;
constexpr double kUnit32 = kEps32 / 2;  // 2^-24

// Bounds on one output c = Σ_k a_k b_k (K terms) computed as f32 sums of bf16(a_k)·bf16(b_k).
// Each product of two bf16 values (8 + 8 significant bits) is exact in f32. Whatever order
// and blocking the kernel sums in (one fp32 rounding per addition, at most K - 1 additions on
// any path), Higham's bound gives |computed - Σ â_k b̂_k| <= γ_K Σ|â_k b̂_k|, γ_K =
// K u32 / (1 - K u32): check 1's bound, with m̂ = Σ|â_k b̂_k|.
double accumulation_bound(int64_t K, double magnitude_rounded) {
  const double g = double(K) * kUnit32 / (1 - double(K) * kUnit32);
  return g * magnitude_rounded;
}
// Against the unrounded inputs: â = a(1+δ1), b̂ = b(1+δ2), |δ| <= 2^-8, so each term is off by
// at most (2u + u²)|a b|, and |â b̂| <= (1+u)²|a b|. Summing: |computed - Σ a_k b_k| <=
// (2u + u² + γ_K (1+u)²) Σ|a_k b_k|: check 2's bound, with m = Σ|a_k b_k|.
double rounding_bound(int64_t K, double magnitude) {
  const double u = kUnitBf16, g = double(K) * kUnit32 / (1 - double(K) * kUnit32);
  return (2 * u + u * u + g * (1 + u) * (1 + u)) * magnitude;
}

double bf16(double v) { return double(bf16_to_f32(f32_to_bf16(float(v)))); }

// A stored weight matrix (stored_matrix.h) with its exact values also rounded to bf16.
struct StoredMatrix : test::StoredMatrix {
  std::vector<double> rounded;
  StoredMatrix(DType type, int64_t rows, int64_t cols, uint32_t seed) : test::StoredMatrix(type, rows, cols, seed) {
    for (double v : values) rounded.push_back(bf16(v));
  }
};

// Element-wise: |got - want| <= bound_i for all i; reports the worst ratio.
void expect_within(const std::vector<float>& got, const std::vector<double>& want,
                   const std::vector<double>& bound, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  size_t worst = 0, outside = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double ratio = std::fabs(double(got[i]) - want[i]) / std::max(bound[i], 1e-300);
    if (!(ratio <= 1)) ++outside;
    if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i;
  }
  EXPECT_EQ(outside, 0u) << what << ": " << outside << " of " << got.size()
                         << " outside; worst element " << worst << " got " << got[worst]
                         << " want " << want[worst] << " (" << worst_ratio << " x the bound)";
  std::printf("%-40s worst error %.3g x the bound\n", what.c_str(), worst_ratio);
}

struct Shape {
  int64_t n, K, N;
};

bool skip_without_bf16() {
  if (bf16_native()) return false;
  std::printf("skipped: no native bf16 dot products here (%s)\n", gemm_bf16_describe().c_str());
  return true;
}

// y = x · Wᵀ (forward) and dx = dy · W (backward), both checks each, for one type and shape.
void check_products(DType type, Shape s, uint32_t seed) {
  const std::string what = cat(dtype_name(type), " n=", s.n, " K=", s.K, " N=", s.N);
  StoredMatrix w(type, s.N, s.K, seed);
  const auto x = randn_f32(size_t(s.n * s.K), seed + 1);
  Bf16Scratch scratch;
  {  // forward, written into rows wider than N (ldy = N + 3) whose extra columns stay put
    const int64_t ldy = s.N + 3;
    std::vector<float> y(size_t(s.n * ldy), 7.0f);
    matmul_forward_bf16(y.data(), to_f32(x).data(), w.m, s.n, ldy, scratch);
    std::vector<float> got;
    std::vector<double> exact, rounded, b1, b2;
    for (int64_t t = 0; t < s.n; ++t)
      for (int64_t o = 0; o < s.N; ++o) {
        double e = 0, r = 0, m = 0, mr = 0;
        for (int64_t k = 0; k < s.K; ++k) {
          const double a = x[size_t(t * s.K + k)], b = w.values[size_t(o * s.K + k)];
          const double ra = bf16(a), rb = w.rounded[size_t(o * s.K + k)];
          e += a * b, r += ra * rb, m += std::fabs(a * b), mr += std::fabs(ra * rb);
        }
        got.push_back(y[size_t(t * ldy + o)]);
        exact.push_back(e), rounded.push_back(r);
        b1.push_back(accumulation_bound(s.K, mr)), b2.push_back(rounding_bound(s.K, m));
      }
    expect_within(got, rounded, b1, "forward rounding " + what);
    expect_within(got, exact, b2, "forward accuracy " + what);
    for (int64_t t = 0; t < s.n; ++t)
      for (int64_t o = s.N; o < ldy; ++o) ASSERT_EQ(y[size_t(t * ldy + o)], 7.0f) << what;
  }
  {  // backward, dy rows ldy = N + 2 apart; then accumulate = true adds the same again
    const int64_t ldy = s.N + 2;
    const auto dy = randn_f32(size_t(s.n * ldy), seed + 2);
    std::vector<float> dx(size_t(s.n * s.K), 7.0f);
    matmul_backward_bf16(dx.data(), to_f32(dy).data(), ldy, w.m, s.n, false, scratch);
    std::vector<double> exact, rounded, b1, b2;
    for (int64_t t = 0; t < s.n; ++t)
      for (int64_t k = 0; k < s.K; ++k) {
        double e = 0, r = 0, m = 0, mr = 0;
        for (int64_t o = 0; o < s.N; ++o) {
          const double a = dy[size_t(t * ldy + o)], b = w.values[size_t(o * s.K + k)];
          const double ra = bf16(a), rb = w.rounded[size_t(o * s.K + k)];
          e += a * b, r += ra * rb, m += std::fabs(a * b), mr += std::fabs(ra * rb);
        }
        exact.push_back(e), rounded.push_back(r);
        b1.push_back(accumulation_bound(s.N, mr)), b2.push_back(rounding_bound(s.N, m));
      }
    expect_within(dx, rounded, b1, "backward rounding " + what);
    expect_within(dx, exact, b2, "backward accuracy " + what);
    // accumulate: one more f32 addition of the same sum, so twice the values within twice
    // the bound plus one rounding of the total (covered by adding K u32 to γ: (K+1) terms).
    matmul_backward_bf16(dx.data(), to_f32(dy).data(), ldy, w.m, s.n, true, scratch);
    for (auto* v : {&rounded, &b1}) for (double& d : *v) d *= 2;
    for (size_t i = 0; i < b1.size(); ++i) b1[i] += 2 * kUnit32 * std::fabs(rounded[i]);
    expect_within(dx, rounded, b1, "backward accumulate " + what);
  }
}

TEST(GemmBf16, RoundingMatchesCoreHalf) {
  // Ties to even, both directions, signs, the largest values (round to inf), inf, NaN,
  // subnormals.
  std::vector<float> in = {0.0f, -0.0f, 1.0f, 1.00390625f /* tie: to 1 */,
                           1.01171875f /* tie: to 1.015625 */, -1.00390625f, 1.0039063f,
                           3.4028235e38f, -3.4028235e38f, INFINITY, -INFINITY, NAN,
                           1e-40f, -1e-45f, 0.1f, 65504.0f};
  for (float f : to_f32(randn_f32(1 << 17, 5, 100))) in.push_back(f);  // a parallel chunk too
  std::vector<uint16_t> out(in.size());
  round_to_bf16(out.data(), in.data(), int64_t(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    if (std::isnan(in[i])) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(out[i])));
      continue;
    }
    ASSERT_EQ(out[i], f32_to_bf16(in[i])) << "input " << in[i];
  }
}

TEST(GemmBf16, EveryStoredTypeOddShapes) {
  if (skip_without_bf16()) GTEST_SKIP() << "no native bf16 here";
  std::printf("%s\n", gemm_bf16_describe().c_str());
  uint32_t seed = 100;
  // Plain float types take any K; block types need whole blocks (32, K-quants 256).
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16})
    for (Shape s : {Shape{1, 1, 1}, Shape{1, 37, 67}, Shape{7, 100, 3}, Shape{33, 45, 130}})
      check_products(type, s, seed += 10);
  for (DType type : {DType::kQ8_0, DType::kQ4_0})
    for (Shape s : {Shape{1, 32, 5}, Shape{9, 96, 67}})
      check_products(type, s, seed += 10);
  for (DType type : {DType::kQ4_K, DType::kQ6_K})
    for (Shape s : {Shape{1, 256, 3}, Shape{17, 512, 41}})
      check_products(type, s, seed += 10);
}

TEST(GemmBf16, TwoTilesWithAShortLastOne) {
  if (skip_without_bf16()) GTEST_SKIP() << "no native bf16 here";
  // A tile holds 2^21 bf16 values: 8192 rows of K = 256, so N = 8197 makes a second tile of
  // 5 rows. Q8_0 goes through the tiles; bf16 in place is one product of all rows.
  for (DType type : {DType::kQ8_0, DType::kBF16}) check_products(type, {3, 256, 8197}, 900);
}

}  // namespace
}  // namespace temper::train
