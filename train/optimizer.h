// The optimiser side of training, with PyTorch's semantics so that a run can be checked
// against a PyTorch loop step by step: AdamW as torch.optim.AdamW (decoupled weight decay,
// bias correction), global-norm clipping as torch.nn.utils.clip_grad_norm_, and the linear /
// cosine warm-up schedules of transformers' get_{linear,cosine}_schedule_with_warmup.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace temper::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

// One AdamW state (first and second moments, fp32, zero at the start) per parameter tensor.
class AdamW {
 public:
  AdamW(const std::vector<size_t>& sizes, const AdamWConfig& cfg);
  // One step at learning rate lr, per element exactly as torch 1.13's _single_tensor_adamw:
  //   p *= 1 - lr·wd;  m = m·β1 + (1-β1)·g;  v = v·β2 + (1-β2)·g²
  //   p -= lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + eps)
  void step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads,
            double lr);
  int64_t steps() const { return t_; }
  // The state a training checkpoint saves and --resume restores (train/checkpoint.cpp): one
  // moment vector per parameter tensor, in constructor order, and the step count t.
  std::vector<std::vector<float>>& first_moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  AdamWConfig cfg_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

// Scales all gradients by min(1, max_norm / (total + 1e-6)), total = the 2-norm of all of them
// as one vector; returns total (before clipping). max_norm <= 0: no clipping, still returns it.
double clip_grad_norm(std::span<const std::span<float>> grads, double max_norm);

enum class Schedule : uint8_t { kConstant, kLinear, kCosine };
// "constant", "linear" or "cosine"; throws Error naming the value otherwise.
Schedule schedule_from_name(std::string_view name);
// Learning rate of optimiser step `step` (0-based) of `total`: linear warm-up over `warmup`
// steps (step / warmup), then constant, linear decay to 0 at `total`, or half a cosine to 0.
double learning_rate(Schedule s, double base_lr, int64_t step, int64_t warmup, int64_t total);

}  // namespace temper::train
