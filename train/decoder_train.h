// The working memory of LoraModel's training pass (internal to train/): each layer's input,
// kept from the forward to the backward, and one layer's recomputed activations and gradients.
#pragma once
#include <vector>

#include "forward/kernels.h"
#include "train/train.h"

namespace temper::train {

struct LoraModel::Work {
  std::vector<forward::RopeParams> rope;     // per layer
  std::vector<std::vector<float>> layer_in;  // per layer: (n, H)
  // One layer's activations (recomputed in the backward).
  std::vector<float> h1, q, k, v, att, lse, x2, h2, gate, up, act, tmp;
  std::vector<std::vector<float>> u;  // per target: (n, rank), x · Aᵀ
  // Gradients.
  std::vector<float> dx, dh, dq, dk, dv, datt, dgate, dup, dact, du;
  std::vector<float> scratch;  // dequantisation tile
};

}  // namespace temper::train
