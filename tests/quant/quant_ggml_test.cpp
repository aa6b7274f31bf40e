// Our quantizers against ggml itself (libggml-base.so of node-llama-cpp 3.22.1): byte-identical
// blocks for every type x {no imatrix, imatrix} x row shapes x row lengths, bit-identical
// dequantization, and the fp16/bf16 conversions of core/half.h against ggml's.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/ggml_ref.h"
#include "quant/quant.h"
#include "quant/quant_inputs.h"

namespace temper {
namespace {

using test::GgmlRef;
using test::Shape;

constexpr DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0,   DType::kQ4_0,
                            DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ2_K,   DType::kQ3_K,
                            DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL, DType::kIQ4_XS};

// Describes the first differing byte: row, block within the row, byte within the block.
std::string first_diff(DType t, const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, size_t row_bytes) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    const size_t bb = size_t(dtype_traits(t).block_bytes);
    const size_t in_row = i % row_bytes;
    return cat("type ", dtype_name(t), ": row ", i / row_bytes, ", block ", in_row / bb, ", byte ", in_row % bb,
               ": ours 0x", std::hex, int(a[i]), " ggml 0x", int(b[i]));
  }
  return "";
}

class QuantVsGgml : public ::testing::TestWithParam<DType> {};

TEST_P(QuantVsGgml, BytesAndDequantizationMatchGgml) {
  const DType t = GetParam();
  const GgmlRef& ggml = GgmlRef::get();
  const bool legacy = dtype_traits(t).block_elems <= 32;
  std::vector<int64_t> lengths = {256, 512, 4096};
  if (legacy) lengths.insert(lengths.begin(), {32, 96});
  int checked = 0;
  for (int64_t n_per_row : lengths) {
    const int64_t n_rows = n_per_row >= 4096 ? 2 : 3;
    for (Shape shape : test::kAllShapes) {
      for (bool with_imatrix : {false, true}) {
        SCOPED_TRACE(cat(dtype_name(t), " n_per_row=", n_per_row, " shape=", test::shape_name(shape),
                         " imatrix=", with_imatrix));
        const auto src = test::make_rows(shape, n_rows, n_per_row, uint32_t(n_per_row * 31 + int(shape)));
        const auto imat = test::make_imatrix(n_per_row, uint32_t(n_per_row + 7));
        const float* qw = with_imatrix ? imat.data() : nullptr;
        const size_t rb = quant::row_bytes(t, n_per_row);
        ASSERT_EQ(rb, ggml.row_size(t, n_per_row));
        std::vector<uint8_t> ours(rb * n_rows, 0xAA), ref(rb * n_rows, 0x55), theirs(rb * n_rows, 0x33);
        ASSERT_EQ(quant::quantize_rows(t, src.data(), ours.data(), n_rows, n_per_row, qw), rb * n_rows);
        ASSERT_EQ(quant::quantize_rows_ref(t, src.data(), ref.data(), n_rows, n_per_row, qw), rb * n_rows);
        ASSERT_EQ(ggml.quantize_chunk(t, src.data(), theirs.data(), n_rows, n_per_row, qw), rb * n_rows);
        ASSERT_TRUE(ours == theirs) << first_diff(t, ours, theirs, rb);
        ASSERT_TRUE(ref == theirs) << "scalar reference: " << first_diff(t, ref, theirs, rb);
        ++checked;
        if (t == DType::kF32) continue;  // ggml has no to_float for f32; quantize is a copy
        // Dequantize ggml's bytes with both and compare bit patterns (no NaN can arise here).
        const int64_t n = n_rows * n_per_row;
        std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
        for (int64_t r = 0; r < n_rows; ++r) {
          quant::dequantize_row(t, theirs.data() + r * rb, a.data() + r * n_per_row, n_per_row);
          ggml.to_float(t, theirs.data() + r * rb, b.data() + r * n_per_row, n_per_row);
        }
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "dequantize differs";
      }
    }
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantVsGgml, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Every float class: a stride over all 2^32 patterns plus, for every sign/exponent/top mantissa
// bits, the patterns next to the fp16 and bf16 rounding boundaries.
template <typename F>
void for_test_floats(F&& f) {
  for (uint64_t u = 0; u <= 0xffffffffull; u += 4099) f(uint32_t(u));
  const uint32_t lows[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0xffff};
  for (uint32_t hi = 0; hi < (1u << 16); ++hi)
    for (uint32_t lo : lows) f((hi << 16) | lo);
}

TEST(HalfVsGgml, Fp32ToFp16MatchesGgmlExceptNaNPayload) {
  const GgmlRef& ggml = GgmlRef::get();
  uint64_t mismatches = 0, nan_payload_diffs = 0;
  for_test_floats([&](uint32_t u) {
    const float f = std::bit_cast<float>(u);
    const uint16_t ours = f32_to_f16(f), theirs = ggml.fp32_to_fp16(f);
    if (std::isnan(f)) {
      // ggml's scalar path returns the canonical quiet NaN 0x7e00; half.h keeps the top payload
      // bits like F16C. Both must be NaN with the input's sign.
      EXPECT_TRUE((ours & 0x7c00) == 0x7c00 && (ours & 0x3ff) && (ours & 0x8000) == (theirs & 0x8000));
      nan_payload_diffs += ours != theirs;
    } else if (ours != theirs && ++mismatches < 5) {
      ADD_FAILURE() << "fp16 of 0x" << std::hex << u << ": ours 0x" << ours << " ggml 0x" << theirs;
    }
  });
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(nan_payload_diffs, 0u);  // documents the known difference; see quant_common.h to_f16
}

TEST(HalfVsGgml, Fp32ToBf16MatchesGgmlBitForBit) {
  const GgmlRef& ggml = GgmlRef::get();
  uint64_t mismatches = 0;
  for_test_floats([&](uint32_t u) {
    const float f = std::bit_cast<float>(u);
    const uint16_t ours = f32_to_bf16(f), theirs = ggml.fp32_to_bf16(f);
    if (ours != theirs && ++mismatches < 5)
      ADD_FAILURE() << "bf16 of 0x" << std::hex << u << ": ours 0x" << ours << " ggml 0x" << theirs;
  });
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace temper
