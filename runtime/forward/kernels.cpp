// fp32 kernels of the forward pass (see kernels.h). Rows are independent, so each kernel
// parallelises its outermost loop over rows with schedule(static); no thread ever writes
// another row's output. Sums of squares and softmax denominators accumulate in double.
#include "forward/kernels.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace temper::forward {

// Rows shorter than this are not worth a parallel region of their own.
constexpr int64_t kMinParallelElems = 1 << 14;

void rmsnorm_forward(float* out, const float* inp, const float* weight, float weight_offset,
                     int64_t n_rows, int dim, float eps) {
#pragma omp parallel for schedule(static) if (n_rows * dim >= kMinParallelElems)
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = inp + r * dim;
    float* y = out + r * dim;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < dim; ++i) ss += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(ss / dim + double(eps)));
    if (weight) {
      for (int i = 0; i < dim; ++i) y[i] = (x[i] * scale) * (weight_offset + weight[i]);
    } else {
      for (int i = 0; i < dim; ++i) y[i] = x[i] * scale;
    }
  }
}

RopeParams make_rope_params(RopeStyle style, int head_dim, int n_rot, float theta,
                            const std::vector<float>& factors, float pos_scale) {
  RopeParams p;
  p.style = style;
  p.head_dim = head_dim;
  p.n_rot = n_rot;
  p.pos_scale = pos_scale;
  p.inv_freq.resize(n_rot / 2);
  for (int j = 0; j < n_rot / 2; ++j) {
    p.inv_freq[j] = std::pow(double(theta), -2.0 * j / n_rot);
    if (!factors.empty()) p.inv_freq[j] /= double(factors[j]);
  }
  return p;
}

RopeParams make_rope_params(RopeStyle style, const LayerConfig& layer, int n_ctx) {
  RopeParams p = make_rope_params(style, layer.head_dim, layer.n_rot, layer.rope_theta,
                                  rope_factors_for(layer, n_ctx), layer.rope_pos_scale);
  p.mscale = layer.rope_attn_factor;
  return p;
}

void rope_forward(float* x, const int32_t* positions, int64_t n_tokens, int n_head,
                  int64_t row_stride, const RopeParams& p) {
  const int half = p.n_rot / 2;
  // Pair (a, b) of frequency j: kHalf (j, j + R/2), kInterleaved (2j, 2j + 1).
  const int a_step = p.style == RopeStyle::kHalf ? 1 : 2;
  const int b_off = p.style == RopeStyle::kHalf ? half : 1;
#pragma omp parallel for schedule(static) if (n_tokens * n_head * p.head_dim >= kMinParallelElems)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double pos = double(positions[t]) * double(p.pos_scale);
    std::vector<float> cs(2 * half);
    for (int j = 0; j < half; ++j) {
      const double angle = pos * p.inv_freq[j];
      cs[2 * j] = float(std::cos(angle)) * p.mscale;
      cs[2 * j + 1] = float(std::sin(angle)) * p.mscale;
    }
    for (int h = 0; h < n_head; ++h) {
      float* v = x + t * row_stride + int64_t(h) * p.head_dim;
      for (int j = 0; j < half; ++j) {
        const int a = j * a_step, b = a + b_off;
        const float c = cs[2 * j], s = cs[2 * j + 1];
        const float va = v[a], vb = v[b];
        v[a] = va * c - vb * s;
        v[b] = vb * c + va * s;
      }
    }
  }
}

void softmax_forward(float* x, int64_t n_rows, int n) {
#pragma omp parallel for schedule(static) if (n_rows * n >= kMinParallelElems)
  for (int64_t r = 0; r < n_rows; ++r) {
    float* v = x + r * n;
    const float mx = *std::max_element(v, v + n);
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      v[i] = std::exp(v[i] - mx);
      sum += v[i];
    }
    const float inv = float(1.0 / sum);
    for (int i = 0; i < n; ++i) v[i] *= inv;
  }
}

double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

void glu_forward(float* out, const float* gate, const float* up, int64_t n, Activation act) {
  if (act == Activation::kSilu) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelElems)
    for (int64_t i = 0; i < n; ++i) out[i] = float(silu(gate[i]) * up[i]);
  } else {
#pragma omp parallel for schedule(static) if (n >= kMinParallelElems)
    for (int64_t i = 0; i < n; ++i) out[i] = float(gelu_tanh(gate[i]) * up[i]);
  }
}

void act_forward(float* x, int64_t n, Activation act) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelElems)
  for (int64_t i = 0; i < n; ++i)
    x[i] = float(act == Activation::kSilu ? silu(x[i]) : gelu_tanh(x[i]));
}

void softcap_forward(float* x, int64_t n, float cap) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelElems)
  for (int64_t i = 0; i < n; ++i) x[i] = float(cap * std::tanh(double(x[i]) / cap));
}

}  // namespace temper::forward
