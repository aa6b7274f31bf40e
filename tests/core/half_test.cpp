// f16/bf16 conversions against an independent reference: the CPU's F16C instructions
// (round-to-nearest-even in hardware) for f16, exhaustive over all 65536 half values one way
// and over 2^24 sampled floats the other way.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <random>

#include "core/half.h"

namespace temper {
namespace {

#if defined(__F16C__)
uint16_t hw_f32_to_f16(float f) { return uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }
float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

TEST(Half, F16ToF32MatchesHardwareForAllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = f16_to_f32(uint16_t(h)), b = hw_f16_to_f32(uint16_t(h));
    if (std::isnan(b)) {
      ASSERT_TRUE(std::isnan(a)) << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(a), std::bit_cast<uint32_t>(b)) << "half bits " << h;
    }
  }
}

TEST(Half, F32ToF16MatchesHardware) {
  std::mt19937 rng(1);
  int checked = 0;
  auto check = [&](float f) {
    const uint16_t a = f32_to_f16(f), b = hw_f32_to_f16(f);
    if (std::isnan(f)) {
      EXPECT_EQ(a & 0x7c00, 0x7c00);
      EXPECT_NE(a & 0x3ff, 0);
    } else {
      ASSERT_EQ(a, b) << "float bits " << std::bit_cast<uint32_t>(f);
    }
    ++checked;
  };
  for (int i = 0; i < (1 << 24); ++i) check(std::bit_cast<float>(uint32_t(rng())));
  // Every rounding boundary of the half range: midpoints between consecutive halves.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = hw_f16_to_f32(uint16_t(h)), hi = hw_f16_to_f32(uint16_t(h + 1));
    const float mid = lo + (hi - lo) / 2;
    check(mid);
    check(std::nextafter(mid, 0.f));
    check(std::nextafter(mid, 1e9f));
    check(-mid);
  }
  EXPECT_GT(checked, 1 << 24);
}
#endif

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // odd: rounds up
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(f32_to_bf16(f), h);  // bf16 -> f32 -> bf16 is the identity
    }
  }
}

}  // namespace
}  // namespace temper
