// Helpers of the training-kernel tests: seeded inputs, central finite differences of a
// double-precision scalar function, and element-wise comparison against a bound.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace temper::train::test {

constexpr double kEps32 = std::numeric_limits<float>::epsilon();  // 2^-23

inline std::vector<double> randn(size_t n, uint32_t seed, double scale = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
// Values exactly representable in fp32, so the fp32 kernel and the double reference see the
// same inputs.
inline std::vector<double> randn_f32(size_t n, uint32_t seed, double scale = 1) {
  auto v = randn(n, seed, scale);
  for (auto& x : v) x = double(float(x));
  return v;
}
inline std::vector<float> to_f32(const std::vector<double>& v) { return {v.begin(), v.end()}; }
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks an analytic gradient `grad` of f at x against central differences
// (f(x + h e_i) - f(x - h e_i)) / 2h, h = 1e-6 max(1, |x_i|), on up to 400 coordinates.
// Error of the quotient: truncation h² |f'''| / 6 (~1e-12 at these O(1) scales) plus
// cancellation ~ eps64 |f| / h = 2.2e-10 |f| (|f| <= ~1e3 here: <= 2.2e-7). The bound,
// 1e-6 (|g_i| + rms(g)), sits above both, while a wrong or missing term in a VJP moves
// gradients by a sizeable fraction of rms(g).
inline void expect_grad_matches_fd(const std::function<double(const std::vector<double>&)>& f,
                                   std::vector<double> x, const std::vector<double>& grad,
                                   const std::string& what) {
  ASSERT_EQ(x.size(), grad.size()) << what;
  double rms = 0;
  for (double g : grad) rms += g * g;
  rms = std::sqrt(rms / double(grad.size()));
  ASSERT_GT(rms, 0) << what << ": the gradient is identically zero (vacuous check)";
  const size_t stride = std::max<size_t>(1, x.size() / 400);
  size_t checked = 0, outside = 0, worst = 0;
  double worst_ratio = 0, worst_fd = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double x0 = x[i], h = 1e-6 * std::max(1.0, std::fabs(x0));
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    const double fd = (fp - fm) / (2 * h);
    const double ratio = std::fabs(fd - grad[i]) / (1e-6 * (std::fabs(grad[i]) + rms));
    ++checked;
    if (ratio > 1) ++outside;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i, worst_fd = fd;
  }
  EXPECT_GT(checked, 0u);
  EXPECT_EQ(outside, 0u) << what << ": worst coordinate " << worst << " analytic " << grad[worst]
                         << " finite difference " << worst_fd << " (" << worst_ratio
                         << " x the bound)";
}

// |got_i - want_i| <= bound for every i (bound from the kernel's fp32 roundings, derived at
// each call site). Reports the worst element and prints the worst ratio to the bound.
inline void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                         double bound, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_GT(got.size(), 0u);
  size_t worst = 0, outside = 0;
  double worst_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    if (!(err <= bound)) ++outside;
    if (!(err <= worst_err)) worst_err = err, worst = i;
  }
  std::printf("%s: max error %.3g = %.3g x bound\n", what.c_str(), worst_err, worst_err / bound);
  EXPECT_EQ(outside, 0u) << what << ": worst index " << worst << " expected " << want[worst]
                         << " actual " << got[worst] << " bound " << bound;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace temper::train::test
