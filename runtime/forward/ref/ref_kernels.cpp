// Scalar double-accumulating references (see ref_kernels.h).
#include "forward/ref/ref_kernels.h"

#include <cmath>
#include <vector>

#include "quant/quant.h"

namespace temper::forward::ref {

void rmsnorm_forward(float* out, const float* inp, const float* weight, float weight_offset,
                     int64_t n_rows, int dim, float eps) {
  for (int64_t r = 0; r < n_rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(inp[r * dim + i]) * inp[r * dim + i];
    const double scale = 1.0 / std::sqrt(ss / dim + double(eps));
    for (int i = 0; i < dim; ++i) {
      const double wgt = weight ? double(weight_offset) + weight[i] : 1.0;
      out[r * dim + i] = float(inp[r * dim + i] * scale * wgt);
    }
  }
}

void rope_forward(float* x, const int32_t* positions, int64_t n_tokens, int n_head,
                  int64_t row_stride, const RopeParams& p) {
  const int half = p.n_rot / 2;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < n_head; ++h) {
      float* v = x + t * row_stride + int64_t(h) * p.head_dim;
      for (int j = 0; j < half; ++j) {
        const double angle = double(positions[t]) * p.pos_scale * p.inv_freq[j];
        const int a = p.style == RopeStyle::kHalf ? j : 2 * j;
        const int b = p.style == RopeStyle::kHalf ? j + half : 2 * j + 1;
        const double va = v[a], vb = v[b];
        const double c = std::cos(angle) * p.mscale, s = std::sin(angle) * p.mscale;
        v[a] = float(va * c - vb * s);
        v[b] = float(vb * c + va * s);
      }
    }
}

void softmax_forward(float* x, int64_t n_rows, int n) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float* v = x + r * n;
    double mx = v[0];
    for (int i = 1; i < n; ++i) mx = std::max(mx, double(v[i]));
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += std::exp(v[i] - mx);
    for (int i = 0; i < n; ++i) v[i] = float(std::exp(v[i] - mx) / sum);
  }
}

void glu_forward(float* out, const float* gate, const float* up, int64_t n, Activation act) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = act == Activation::kSilu ? silu(gate[i]) : gelu_tanh(gate[i]);
    out[i] = float(g * up[i]);
  }
}

void softcap_forward(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = float(cap * std::tanh(double(x[i]) / cap));
}

void matmul_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy) {
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    quant::dequantize_row(w.dtype, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double acc = 0;
      for (int64_t i = 0; i < w.cols; ++i) acc += double(x[t * w.cols + i]) * row[i];
      y[t * ldy + r] = float(acc);
    }
  }
}

void attention_forward(float* out, const float* q, const float* k_cache, const float* v_cache,
                       int64_t n_tokens, int64_t pos0, int n_head, int n_head_kv, int head_dim,
                       int window, float scale) {
  const int64_t qs = int64_t(n_head) * head_dim, kvs = int64_t(n_head_kv) * head_dim;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < n_head; ++h) {
      const int64_t qp = pos0 + t;
      const int64_t kvo = int64_t(h / (n_head / n_head_kv)) * head_dim;
      std::vector<double> s(size_t(qp + 1), -INFINITY);
      double mx = -INFINITY;
      for (int64_t p = 0; p <= qp; ++p) {
        if (window > 0 && qp - p >= window) continue;
        double dot = 0;
        for (int i = 0; i < head_dim; ++i)
          dot += double(q[t * qs + h * head_dim + i]) * k_cache[p * kvs + kvo + i];
        s[p] = dot * scale;
        mx = std::max(mx, s[p]);
      }
      double denom = 0;
      for (int64_t p = 0; p <= qp; ++p) denom += std::exp(s[p] - mx);
      for (int i = 0; i < head_dim; ++i) {
        double acc = 0;
        for (int64_t p = 0; p <= qp; ++p)
          acc += std::exp(s[p] - mx) / denom * v_cache[p * kvs + kvo + i];
        out[t * qs + h * head_dim + i] = float(acc);
      }
    }
}

}  // namespace temper::forward::ref
