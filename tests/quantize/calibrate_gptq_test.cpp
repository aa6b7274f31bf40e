// The calibrated quantizer's pieces: writing codes into ggml blocks reproduces ggml's own bytes
// for every packable type, and GPTQ's error feedback lowers the output error
// tr((W−Q) H (W−Q)ᵀ) below ggml's imatrix rounding on correlated inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "quant/quant.h"
#include "quantize/block_codes.h"
#include "quantize/gptq.h"

namespace temper {
namespace {

const DType kPackable[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K,
                           DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL, DType::kIQ4_XS};

class BlockCodes : public ::testing::TestWithParam<DType> {};

// ggml's bytes -> (a, b) per element from ggml's decoder -> each element's nearest code ->
// written back: the same bytes. This pins set_block_codes's bit layout and block_grid to the
// decoder (itself byte-checked against ggml in tests/quant) for every element position.
TEST_P(BlockCodes, CodesOfGgmlBlocksRewriteToTheSameBytes) {
  const DType t = GetParam();
  const int bs = dtype_traits(t).block_elems, n_blocks = 64;
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0, 1);
  const size_t n = size_t(bs);
  std::vector<float> x(n * n_blocks), dec(n), a(n), b(n);
  for (float& v : x) v = g(rng) * (1 + 3 * (rng() % 7 == 0));
  const size_t bb = size_t(dtype_traits(t).block_bytes);
  std::vector<uint8_t> bytes(bb * n_blocks);
  quant::quantize_rows(t, x.data(), bytes.data(), 1, int64_t(x.size()), nullptr);
  const int n_codes = quant::block_code_count(t);
  int64_t checked = 0;
  for (int k = 0; k < n_blocks; ++k) {
    const uint8_t* orig = &bytes[k * bb];
    quant::dequantize_row(t, orig, dec.data(), bs);
    std::vector<uint8_t> copy(orig, orig + bb), codes(n);
    quant::block_grid(t, copy.data(), a.data(), b.data());
    for (int i = 0; i < bs; ++i) {
      int best = 0;
      float best_e = INFINITY;
      for (int c = 0; c < n_codes; ++c) {
        const float e = std::fabs(dec[i] - (a[i] * quant::block_code_grid(t, c) + b[i]));
        if (e < best_e) best_e = e, best = c;
      }
      codes[size_t(i)] = uint8_t(best);
    }
    quant::set_block_codes(t, copy.data(), codes);
    ASSERT_EQ(copy, std::vector<uint8_t>(orig, orig + bb)) << dtype_name(t) << " block " << k;
    ++checked;
  }
  EXPECT_EQ(checked, n_blocks);
}

INSTANTIATE_TEST_SUITE_P(AllPackable, BlockCodes, ::testing::ValuesIn(kPackable),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(BlockCodes, F16IsRefused) {
  EXPECT_FALSE(quant::has_block_codes(DType::kF16));
  EXPECT_THROW(quant::block_code_count(DType::kF16), Error);
}

class Gptq : public ::testing::TestWithParam<DType> {};

// Inputs with strongly correlated columns (x = z·M + noise, 24 shared factors): where error feedback
// pays. GPTQ must beat plain imatrix rounding clearly here (measured 0.03-0.07x on every type; the
// bound 0.9x leaves room for other seeds), and the kept
// result is never worse than plain by construction.
// One (K, K) second moment of T inputs with strongly correlated columns, shared by every type.
const std::vector<double>& correlated_moments(int64_t K) {
  static std::vector<double> h;
  if (!h.empty()) return h;
  const int64_t T = 2048, F = 24;
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> m(F * K), x(T * K);
  for (float& v : m) v = g(rng);
  for (int64_t s = 0; s < T; ++s) {
    float z[24];
    for (float& v : z) v = g(rng);
    for (int64_t j = 0; j < K; ++j) {
      float acc = 0.3f * g(rng);
      for (int f = 0; f < F; ++f) acc += z[f] * m[size_t(f * K + j)];
      x[size_t(s * K + j)] = acc;
    }
  }
  h.assign(size_t(K * K), 0.0);
  for (int64_t s = 0; s < T; ++s)
    for (int64_t i = 0; i < K; ++i) {
      const double xi = x[size_t(s * K + i)] / double(T);
      for (int64_t j = 0; j < K; ++j) h[size_t(i * K + j)] += xi * x[size_t(s * K + j)];
    }
  return h;
}

TEST_P(Gptq, FeedbackLowersOutputErrorOnCorrelatedInputs) {
  const DType t = GetParam();
  const int64_t N = 48, K = 512;
  const std::vector<double>& h = correlated_moments(K);
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> w(N * K);
  for (float& v : w) v = 0.02f * g(rng);
  const GptqResult r = gptq_quantize(t, w.data(), N, K, h, {});
  EXPECT_TRUE(r.used_gptq) << dtype_name(t);
  EXPECT_LT(r.error_gptq, 0.9 * r.error_plain) << dtype_name(t);
  std::printf("%s: GPTQ / plain output error %.3f\n", std::string(dtype_name(t)).c_str(), r.error_gptq / r.error_plain);
  // The reported error is the kept bytes' error.
  EXPECT_NEAR(output_error(t, w.data(), r.bytes.data(), N, K, h), std::min(r.error_gptq, r.error_plain),
              1e-6 * r.error_plain);
}

INSTANTIATE_TEST_SUITE_P(AllPackable, Gptq, ::testing::ValuesIn(kPackable),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace temper
