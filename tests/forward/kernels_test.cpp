// Forward kernels against the scalar double references (forward/ref) at awkward sizes, with
// tolerances derived from the number of fp32 roundings each kernel performs.
#include "forward/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "forward/layers.h"
#include "forward/matmul.h"
#include "forward/ref/ref_kernels.h"
#include "quant/quant.h"

namespace temper::forward {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();  // 2^-23

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Asserts |got - want| <= bound[i] everywhere; on failure reports the worst index.
void expect_within(const std::vector<float>& got, const std::vector<float>& want,
                   const std::vector<double>& bound, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  size_t worst = 0, outside = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    const double ratio = bound[i] > 0 ? err / bound[i] : (err > 0 ? INFINITY : 0);
    if (ratio > 1) ++outside;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  EXPECT_EQ(outside, 0u) << what << ": worst index " << worst << " expected " << want[worst]
                         << " actual " << got[worst] << " bound " << bound[worst];
}

TEST(ForwardKernels, RmsnormMatchesReference) {
  for (int dim : {1, 7, 63, 64, 65, 257})
    for (float offset : {0.0f, 1.0f})
      for (bool weighted : {true, false}) {
        const int rows = 3;
        auto x = randn(size_t(rows) * dim, 1 + dim, 2.0f);
        auto w = randn(dim, 100 + dim, 0.3f);
        std::vector<float> got(x.size()), want(x.size());
        rmsnorm_forward(got.data(), x.data(), weighted ? w.data() : nullptr, offset, rows, dim,
                        1e-6f);
        ref::rmsnorm_forward(want.data(), x.data(), weighted ? w.data() : nullptr, offset, rows,
                             dim, 1e-6f);
        // fp32 roundings: the scale cast, offset + w, and two products: c = 4.
        std::vector<double> bound(x.size());
        for (size_t i = 0; i < x.size(); ++i) bound[i] = 4 * kEps * std::fabs(want[i]) + 1e-30;
        expect_within(got, want, bound, "rmsnorm dim " + std::to_string(dim));
      }
}

TEST(ForwardKernels, RopeMatchesReference) {
  for (RopeStyle style : {RopeStyle::kHalf, RopeStyle::kInterleaved})
    for (int hd : {2, 8, 14, 64})
      for (int n_rot : {hd, hd / 2 - (hd / 2) % 2}) {
        if (n_rot <= 0) continue;
        const int T = 5, NH = 3;
        std::vector<float> factors;
        for (int j = 0; j < n_rot / 2; ++j) factors.push_back(1.0f + 0.5f * j);
        const RopeParams p = make_rope_params(style, hd, n_rot, 10000.0f, factors, 0.125f);
        const std::vector<int32_t> pos = {0, 1, 17, 999, 5000};
        auto x = randn(size_t(T) * NH * hd, 7 + hd);
        auto got = x, want = x;
        rope_forward(got.data(), pos.data(), T, NH, int64_t(NH) * hd, p);
        ref::rope_forward(want.data(), pos.data(), T, NH, int64_t(NH) * hd, p);
        // Each output is va*c - vb*s with c, s rounded to fp32: <= 4 eps (|va| + |vb|) bounds the
        // cos/sin roundings, two products and the sum. Paired inputs are at most 2 max|x|.
        double mx = 0;
        for (float v : x) mx = std::max(mx, double(std::fabs(v)));
        std::vector<double> bound(x.size(), 4 * kEps * 2 * mx);
        expect_within(got, want, bound, "rope hd " + std::to_string(hd));
        // Pass-through dims are untouched.
        for (int t = 0; t < T; ++t)
          for (int h = 0; h < NH; ++h)
            for (int i = n_rot; i < hd; ++i) {
              const size_t k = (size_t(t) * NH + h) * hd + i;
              ASSERT_EQ(got[k], x[k]);
            }
      }
}

// LongRoPE as a layer states it: the long factors only for a context longer than
// rope_long_after, and the attention factor scaling the rotated dims (HF multiplies cos and sin
// by it; llama.cpp's ggml_rope_ext by attn_factor) while pass-through dims stay as they are.
TEST(ForwardKernels, LongRopeFactorsAndAttentionFactor) {
  LayerConfig L;
  L.head_dim = 16;
  L.n_rot = 12;  // partial rotary: dims 12..15 pass through
  L.rope_theta = 10000;
  for (int j = 0; j < 6; ++j) {
    L.rope_freq_factors.push_back(1.0f + 0.25f * j);
    L.rope_freq_factors_long.push_back(2.0f + 3.0f * j);
  }
  L.rope_long_after = 64;
  L.rope_attn_factor = 1.25f;
  EXPECT_EQ(&rope_factors_for(L, 64), &L.rope_freq_factors);
  EXPECT_EQ(&rope_factors_for(L, 65), &L.rope_freq_factors_long);
  LayerConfig no_long = L;
  no_long.rope_freq_factors_long.clear();
  EXPECT_EQ(&rope_factors_for(no_long, 1 << 20), &no_long.rope_freq_factors);

  const int T = 4, NH = 2, HD = L.head_dim;
  const std::vector<int32_t> pos = {0, 3, 50, 63};
  const auto x = randn(size_t(T) * NH * HD, 41);
  for (int n_ctx : {64, 65}) {
    const RopeParams p = make_rope_params(RopeStyle::kHalf, L, n_ctx);
    EXPECT_EQ(p.mscale, 1.25f);
    const auto& factors = n_ctx > 64 ? L.rope_freq_factors_long : L.rope_freq_factors;
    for (int j = 0; j < 6; ++j)
      EXPECT_DOUBLE_EQ(p.inv_freq[j], std::pow(10000.0, -2.0 * j / 12) / factors[j]) << n_ctx << " " << j;
    RopeParams unscaled = p;
    unscaled.mscale = 1;
    auto got = x, plain = x, want = x;
    rope_forward(got.data(), pos.data(), T, NH, int64_t(NH) * HD, p);
    rope_forward(plain.data(), pos.data(), T, NH, int64_t(NH) * HD, unscaled);
    ref::rope_forward(want.data(), pos.data(), T, NH, int64_t(NH) * HD, p);
    double mx = 0;
    for (float v : x) mx = std::max(mx, double(std::fabs(v)));
    expect_within(got, want, std::vector<double>(x.size(), 4 * kEps * 2 * 1.25 * mx), "scaled rope");
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < NH; ++h)
        for (int i = 0; i < HD; ++i) {
          const size_t k = (size_t(t) * NH + h) * HD + i;
          if (i >= L.n_rot) {
            ASSERT_EQ(got[k], x[k]);
          } else {
            // Scaling rounded c and s once more: within 2 eps of 1.25 times the unscaled result.
            EXPECT_NEAR(got[k], 1.25 * plain[k], 4 * kEps * 2 * 1.25 * mx) << k;
          }
        }
    // The scale is there: rotated dims grow by 1.25 in norm, which the bound above could not hide.
    double n_got = 0, n_x = 0;
    for (int i = 0; i < L.n_rot; ++i) n_got += double(got[i]) * got[i], n_x += double(x[i]) * x[i];
    EXPECT_NEAR(std::sqrt(n_got / n_x), 1.25, 1e-5);
  }
}

TEST(ForwardKernels, SoftmaxActivationsSoftcapMatchReference) {
  for (int n : {1, 3, 31, 1000}) {
    auto x = randn(size_t(4) * n, 3 + n, 3.0f);
    auto got = x, want = x;
    softmax_forward(got.data(), 4, n);
    ref::softmax_forward(want.data(), 4, n);
    // fp32 exp of a rounded argument (relative error <= (|x - max| + 1) eps), the product with
    // the rounded 1/sum (2 eps): relative bound (|x - max| + 4) eps; |x - max| <= 40 here.
    std::vector<double> bound(x.size());
    for (size_t i = 0; i < x.size(); ++i) bound[i] = 44 * kEps * want[i] + 1e-38;
    expect_within(got, want, bound, "softmax n " + std::to_string(n));
  }
  const int n = 1001;
  auto g = randn(n, 11, 4.0f), u = randn(n, 12);
  for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
    std::vector<float> got(n), want(n);
    glu_forward(got.data(), g.data(), u.data(), n, act);
    ref::glu_forward(want.data(), g.data(), u.data(), n, act);
    // Both evaluate in double and round once.
    std::vector<double> bound(n);
    for (int i = 0; i < n; ++i) bound[i] = kEps * std::fabs(want[i]) + 1e-38;
    expect_within(got, want, bound, "glu");
  }
  auto got = g, want = g;
  softcap_forward(got.data(), n, 3.0f);
  ref::softcap_forward(want.data(), n, 3.0f);
  std::vector<double> bound(n);
  for (int i = 0; i < n; ++i) bound[i] = kEps * std::fabs(want[i]) + 1e-38;
  expect_within(got, want, bound, "softcap");
}

TEST(ForwardKernels, AttentionMatchesReference) {
  const int NH = 4, NKV = 2, HD = 7;
  for (int window : {0, 3})
    for (int64_t pos0 : {0, 3}) {
      const int64_t T = 5, n_pos = pos0 + T;
      auto q = randn(size_t(T) * NH * HD, 21);
      auto k = randn(size_t(n_pos) * NKV * HD, 22);
      auto v = randn(size_t(n_pos) * NKV * HD, 23);
      const float scale = 0.4f;
      std::vector<float> got(q.size()), want(q.size());
      attention_forward(got.data(), q.data(), k.data(), v.data(), T, pos0, NH, NKV, HD, window,
                        scale);
      ref::attention_forward(want.data(), q.data(), k.data(), v.data(), T, pos0, NH, NKV, HD,
                             window, scale);
      // A score perturbed by d changes the softmax weights by a relative <= 2d; fp32 scores
      // carry d <= (HD + 2) eps * scale * sum|q k|; plus ~4 eps from exp and the output cast.
      // Factor 2 on top for the sum over keys.
      double max_qk = 0, max_v = 0;
      for (int64_t t = 0; t < T; ++t)
        for (int h = 0; h < NH; ++h)
          for (int64_t p = 0; p < n_pos; ++p) {
            double s = 0;
            for (int i = 0; i < HD; ++i)
              s += std::fabs(q[(t * NH + h) * HD + i] * k[(p * NKV + h / 2) * HD + i]);
            max_qk = std::max(max_qk, s * scale);
          }
      for (float x : v) max_v = std::max(max_v, double(std::fabs(x)));
      const double b = 2 * (2 * (HD + 2) * kEps * max_qk + 4 * kEps) * max_v;
      expect_within(got, want, std::vector<double>(got.size(), b), "attention");
    }
}

// y = x·Wᵀ for each storage type against the double reference on the same stored weights.
// Bound (gemma AssertClose style): |y - y_ref| <= c K eps sum_i |x_i w_i| with c = 2
// (sgemm's blocked fp32 accumulation is within gamma_K ~ K eps; 2 covers FMA/non-FMA mixes).
void check_matmul(DType dtype, int64_t T, int64_t N, int64_t K, size_t misalign) {
  auto wf = randn(size_t(N * K), uint32_t(N * 31 + K), 0.5f);
  auto x = randn(size_t(T * K), uint32_t(T * 7 + K));
  const size_t rb = quant::row_bytes(dtype, K);
  std::vector<uint8_t> store(rb * N + misalign);
  quant::quantize_rows(dtype, wf.data(), store.data() + misalign, N, K, nullptr);
  Matrix m{store.data() + misalign, dtype, N, K, rb};
  std::vector<float> got(size_t(T * N)), want(size_t(T * N)), scratch;
  matmul_forward(got.data(), x.data(), m, T, N, scratch);
  ref::matmul_forward(want.data(), x.data(), m, T, N);
  std::vector<double> bound(got.size());
  std::vector<float> row(K);
  for (int64_t r = 0; r < N; ++r) {
    quant::dequantize_row(dtype, m.row(r), row.data(), K);
    for (int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t i = 0; i < K; ++i) s += std::fabs(double(x[t * K + i]) * row[i]);
      bound[t * N + r] = 2 * K * kEps * s;
    }
  }
  expect_within(got, want, bound,
                std::string("matmul ") + std::string(dtype_traits(dtype).name) + " T" +
                    std::to_string(T) + " N" + std::to_string(N) + " K" + std::to_string(K));
}

TEST(ForwardMatmul, PlainTypesMatchReference) {
  for (int64_t T : {1, 3, 17})
    for (int64_t N : {1, 5, 33}) {
      check_matmul(DType::kF32, T, N, 37, 0);  // direct sgemm
      check_matmul(DType::kF32, T, N, 37, 2);  // misaligned: dequantised tiles
      check_matmul(DType::kF16, T, N, 37, 0);
      check_matmul(DType::kBF16, T, N, 37, 1);
    }
}

TEST(ForwardMatmul, BlockTypesMatchReference) {
  for (int64_t T : {1, 4}) {
    check_matmul(DType::kQ8_0, T, 7, 96, 0);
    check_matmul(DType::kQ4_0, T, 7, 96, 0);
    check_matmul(DType::kQ4_K, T, 5, 512, 0);
    check_matmul(DType::kQ6_K, T, 5, 256, 0);
  }
}

TEST(ForwardMatmul, SeveralTilesMatchReference) {
  // 4099 rows of 256: more than one 1 Mi-element tile, the last one partial.
  check_matmul(DType::kBF16, 2, 4099, 256, 0);
}

TEST(ForwardMoe, RoutingPicksTopKAndRenormalises) {
  // Logits chosen so the softmax order is 2 > 0 > 3 > 1.
  const std::vector<float> logits = {1.0f, -1.0f, 3.0f, 0.5f};
  const std::vector<float> scale = {1.0f, 1.0f, 2.0f, 1.0f};
  Routing r = route_tokens(logits.data(), 1, 4, 2, true, {});
  ASSERT_EQ(r.expert, (std::vector<int32_t>{2, 0}));
  const double e2 = std::exp(3.0), e0 = std::exp(1.0);
  EXPECT_NEAR(r.weight[0], e2 / (e2 + e0), 1e-6);
  EXPECT_NEAR(r.weight[1], e0 / (e2 + e0), 1e-6);
  r = route_tokens(logits.data(), 1, 4, 2, false, scale);
  const double z = std::exp(1.0) + std::exp(-1.0) + std::exp(3.0) + std::exp(0.5);
  EXPECT_NEAR(r.weight[0], 2 * e2 / z, 1e-6);
  EXPECT_NEAR(r.weight[1], e0 / z, 1e-6);
}

}  // namespace
}  // namespace temper::forward
