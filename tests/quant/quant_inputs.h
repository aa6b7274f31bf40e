// Row generators shared by the quant tests: the shapes that stress ggml's quantizers (Gaussian,
// heavy tails and outliers, zero rows and blocks, a single huge value, subnormals, tiny values
// near the fp16 limits). Deterministic per (shape, seed).
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace temper::test {

enum class Shape { kNormal, kHeavyTail, kZero, kZeroBlocks, kOneHuge, kSubnormal, kTiny, kLarge };
inline constexpr Shape kAllShapes[] = {Shape::kNormal, Shape::kHeavyTail, Shape::kZero, Shape::kZeroBlocks,
                                       Shape::kOneHuge, Shape::kSubnormal, Shape::kTiny, Shape::kLarge};

inline std::string shape_name(Shape s) {
  switch (s) {
    case Shape::kNormal: return "normal";
    case Shape::kHeavyTail: return "heavy_tail";
    case Shape::kZero: return "zero";
    case Shape::kZeroBlocks: return "zero_blocks";
    case Shape::kOneHuge: return "one_huge";
    case Shape::kSubnormal: return "subnormal";
    case Shape::kTiny: return "tiny";
    case Shape::kLarge: return "large";
  }
  return "?";
}

inline std::vector<float> make_rows(Shape s, int64_t n_rows, int64_t n_per_row, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n_rows * n_per_row));
  for (int64_t i = 0; i < int64_t(v.size()); ++i) {
    const float g = normal(rng);
    float x = 0;
    switch (s) {
      case Shape::kNormal: x = 0.02f * g; break;
      // Student-t with 3 dof (normal / sqrt(chi2_3 / 3)) plus occasional 100x outliers.
      case Shape::kHeavyTail: {
        const float a = normal(rng), b = normal(rng), c = normal(rng);
        x = 0.02f * g / std::sqrt((a * a + b * b + c * c) / 3.f + 1e-6f);
        if (uni(rng) < 0.01f) x *= 100.f;
        break;
      }
      case Shape::kZero: x = 0; break;
      case Shape::kZeroBlocks: x = ((i / 32) % 3 == 1) ? 0.f : 0.05f * g; break;  // every third block zero
      case Shape::kOneHuge: x = 0.01f * g; break;
      case Shape::kSubnormal: x = 1e-40f * g; break;                               // fp32 subnormals
      case Shape::kTiny: x = ((i / 16) % 2 ? 1e-7f : 3e-5f) * g; break;            // scales in fp16 subnormal range
      case Shape::kLarge: x = 2000.f * g; break;                                   // d close to fp16 max for Q4
    }
    v[size_t(i)] = x;
  }
  if (s == Shape::kOneHuge)
    for (int64_t r = 0; r < n_rows; ++r) v[size_t(r * n_per_row + (7 * r + 5) % n_per_row)] = 3.0e4f;
  return v;
}

// Positive importance weights with a wide dynamic range, like real imatrix columns.
inline std::vector<float> make_imatrix(int64_t n_per_row, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.5f);
  std::vector<float> w(static_cast<size_t>(n_per_row));
  for (float& x : w) x = std::exp(normal(rng)) + 1e-3f;
  return w;
}

}  // namespace temper::test
