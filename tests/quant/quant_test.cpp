// Properties of runtime/quant that need no external reference: thread-count independence,
// vectorised == scalar port, API errors, and two-sided distortion bounds per type (so neither a
// copying nor a broken quantizer passes). Bit-exactness vs ggml is in quant_ggml_test.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/quant.h"
#include "quant/quant_inputs.h"

namespace temper {
namespace {

constexpr DType kQuantTypes[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                 DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                                 DType::kIQ4_NL, DType::kIQ4_XS, DType::kF16, DType::kBF16};

class QuantProps : public ::testing::TestWithParam<DType> {};

TEST_P(QuantProps, SameBytesAtOneAndTwoThreadsAndAsScalarPort) {
  const DType t = GetParam();
  const int64_t n_rows = 16, n_per_row = 512;
  for (bool with_imatrix : {false, true}) {
    const auto src = test::make_rows(test::Shape::kHeavyTail, n_rows, n_per_row, 11);
    const auto imat = test::make_imatrix(n_per_row, 5);
    const float* qw = with_imatrix ? imat.data() : nullptr;
    const size_t bytes = quant::row_bytes(t, n_per_row) * n_rows;
    std::vector<uint8_t> one(bytes, 1), two(bytes, 2), ref(bytes, 3);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    quant::quantize_rows(t, src.data(), one.data(), n_rows, n_per_row, qw);
    omp_set_num_threads(2);
    quant::quantize_rows(t, src.data(), two.data(), n_rows, n_per_row, qw);
    omp_set_num_threads(saved);
    quant::quantize_rows_ref(t, src.data(), ref.data(), n_rows, n_per_row, qw);
    EXPECT_TRUE(one == two) << dtype_name(t) << " imatrix=" << with_imatrix;
    EXPECT_TRUE(one == ref) << dtype_name(t) << " imatrix=" << with_imatrix;
  }
}

// Relative RMSE of a quantize/dequantize round trip on Gaussian rows. The bounds bracket the
// expected error of each format (about 2^-bits of the block range; measured values are printed)
// by a factor of ~2-3 each way: a lossless copy or a wrong scale falls outside.
struct Bounds { DType t; double lo, hi; };
constexpr Bounds kBounds[] = {
    {DType::kQ8_0, 1e-3, 1e-2},  {DType::kQ6_K, 3e-3, 2.5e-2}, {DType::kQ5_0, 1e-2, 6e-2},
    {DType::kQ5_1, 1e-2, 6e-2},  {DType::kQ5_K, 1e-2, 6e-2},   {DType::kQ4_0, 3e-2, 0.15},
    {DType::kQ4_1, 3e-2, 0.15},  {DType::kQ4_K, 2e-2, 0.12},   {DType::kIQ4_NL, 2e-2, 0.12},
    {DType::kIQ4_XS, 2e-2, 0.12}, {DType::kQ3_K, 5e-2, 0.25},  {DType::kQ2_K, 0.12, 0.5},
    {DType::kF16, 5e-5, 1e-3},   {DType::kBF16, 5e-4, 5e-3},
};

TEST_P(QuantProps, DistortionWithinTwoSidedBounds) {
  const DType t = GetParam();
  const Bounds* b = nullptr;
  for (const Bounds& x : kBounds) if (x.t == t) b = &x;
  ASSERT_NE(b, nullptr);
  const int64_t n_rows = 8, n_per_row = 4096;
  const auto src = test::make_rows(test::Shape::kNormal, n_rows, n_per_row, 3);
  const auto imat = test::make_imatrix(n_per_row, 9);
  for (bool with_imatrix : {false, true}) {
    std::vector<uint8_t> q(quant::row_bytes(t, n_per_row) * n_rows);
    quant::quantize_rows(t, src.data(), q.data(), n_rows, n_per_row, with_imatrix ? imat.data() : nullptr);
    std::vector<float> back(src.size());
    quant::dequantize_row(t, q.data(), back.data(), int64_t(src.size()));
    double err = 0, ref = 0;
    for (size_t i = 0; i < src.size(); ++i) {
      err += (double(back[i]) - src[i]) * (double(back[i]) - src[i]);
      ref += double(src[i]) * src[i];
    }
    const double rel = std::sqrt(err / ref);
    RecordProperty(std::string(dtype_name(t)) + (with_imatrix ? "_imatrix" : ""), std::to_string(rel));
    EXPECT_GE(rel, b->lo) << dtype_name(t) << " imatrix=" << with_imatrix;
    EXPECT_LE(rel, b->hi) << dtype_name(t) << " imatrix=" << with_imatrix;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantProps, ::testing::ValuesIn(kQuantTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(QuantApi, RejectsPartialBlocksAndUnsupportedTypes) {
  std::vector<float> src(300, 1.f);
  std::vector<uint8_t> dst(4096);
  EXPECT_THROW(quant::quantize_rows(DType::kQ4_K, src.data(), dst.data(), 1, 128, nullptr), Error);
  EXPECT_THROW(quant::quantize_rows(DType::kQ8_0, src.data(), dst.data(), 1, 33, nullptr), Error);
  EXPECT_THROW(quant::quantize_rows(DType::kI32, src.data(), dst.data(), 1, 32, nullptr), Error);
  EXPECT_THROW(quant::dequantize_row(DType::kQ6_K, dst.data(), src.data(), 100), Error);
  EXPECT_FALSE(quant::supports(DType::kQ8_1));
  EXPECT_TRUE(quant::supports(DType::kIQ4_XS));
  EXPECT_EQ(quant::row_bytes(DType::kQ4_K, 512), 288u);
}

}  // namespace
}  // namespace temper
