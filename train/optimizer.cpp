// AdamW, gradient clipping and learning-rate schedules (see optimizer.h). Elements are
// independent, so the loops run in a fixed order and the results depend on nothing but the
// inputs (bit-identical reruns); the global norm is summed in double in tensor order.
#include "train/optimizer.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace temper::train {

AdamW::AdamW(const std::vector<size_t>& sizes, const AdamWConfig& cfg) : cfg_(cfg) {
  for (size_t n : sizes) {
    m_.emplace_back(n, 0.0f);
    v_.emplace_back(n, 0.0f);
  }
}

void AdamW::step(std::span<const std::span<float>> params,
                 std::span<const std::span<const float>> grads, double lr) {
  TEMPER_CHECK(params.size() == m_.size() && grads.size() == m_.size(),
               "AdamW: parameter count changed");
  ++t_;
  // Scalars as torch computes them (Python floats, i.e. double), used in fp32 per element.
  const float decay = float(1 - lr * cfg_.weight_decay);
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2);
  const float one_b1 = float(1 - cfg_.beta1), one_b2 = float(1 - cfg_.beta2);
  const double bc1 = 1 - std::pow(cfg_.beta1, double(t_));
  const double bc2 = 1 - std::pow(cfg_.beta2, double(t_));
  const float step_size = float(lr / bc1), bc2_sqrt = float(std::sqrt(bc2));
  const float eps = float(cfg_.eps);
  for (size_t i = 0; i < params.size(); ++i) {
    float* p = params[i].data();
    const float* g = grads[i].data();
    float* m = m_[i].data();
    float* v = v_[i].data();
#pragma omp parallel for schedule(static) if (params[i].size() >= (1 << 16))
    for (size_t j = 0; j < params[i].size(); ++j) {
      p[j] *= decay;
      m[j] = m[j] * b1 + one_b1 * g[j];
      v[j] = v[j] * b2 + one_b2 * (g[j] * g[j]);
      const float denom = std::sqrt(v[j]) / bc2_sqrt + eps;
      p[j] -= step_size * (m[j] / denom);
    }
  }
}

double clip_grad_norm(std::span<const std::span<float>> grads, double max_norm) {
  double ss = 0;
  for (const auto& g : grads)
    for (float x : g) ss += double(x) * x;
  const double total = std::sqrt(ss);
  if (max_norm > 0) {
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1) {
      const float c = float(coef);
      for (const auto& g : grads)
        for (float& x : g) x *= c;
    }
  }
  return total;
}

Schedule schedule_from_name(std::string_view name) {
  if (name == "constant") return Schedule::kConstant;
  if (name == "linear") return Schedule::kLinear;
  if (name == "cosine") return Schedule::kCosine;
  fail("unknown --schedule '", name, "' (constant, linear, cosine)");
}

double learning_rate(Schedule s, double base_lr, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return base_lr * double(step) / double(std::max<int64_t>(1, warmup));
  if (s == Schedule::kConstant) return base_lr;
  const double span = double(std::max<int64_t>(1, total - warmup));
  const double progress = double(step - warmup) / span;
  if (s == Schedule::kLinear) return base_lr * std::max(0.0, 1 - progress);
  return base_lr * std::max(0.0, 0.5 * (1 + std::cos(std::numbers::pi * progress)));
}

}  // namespace temper::train
