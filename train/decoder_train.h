// The working memory of LoraModel's training pass (internal to train/): each layer's input,
// kept from the forward to the backward, the K/V of layers other layers read, one layer's
// gradients, and the layers' activations: one set, recomputed per layer in the backward
// (recompute on), or one set per layer kept from the forward (recompute off).
#pragma once
#include <vector>

#include "forward/kernels.h"
#include "train/gemm_bf16.h"
#include "train/train.h"

namespace temper::train {

// The activations of one layer the backward reads; names follow decoder_train.cpp.
struct LayerActivations {
  std::vector<float> h1, q_raw, q, k_raw, v_raw, att, lse, a_raw, x2, h2, gate, up, act, md, z,
      ex_in, m2, m, pg, pa, pp, ple_l;
  std::vector<float> kc, vc;          // its own K/V (layers whose K/V no other layer reads)
  std::vector<std::vector<float>> u;  // per target: (n, rank), x · Aᵀ
};

struct LoraModel::Work {
  std::vector<forward::RopeParams> rope;     // per layer
  std::vector<std::vector<float>> layer_in;  // per layer: (n, H)
  // Normed, rotated K and V (n, NKV*HD) and their gradients, per slot: one slot per layer
  // whose K/V later layers read (KV sharing; kept for the whole pass, every reader adds into
  // its gradient before the owner's own backward runs), slot 0 for all other layers.
  std::vector<std::vector<float>> kc, vc, dkc, dvc;
  std::vector<float> ple, ple_tok;  // per-layer embedding inputs (n, L*P)
  std::vector<LayerActivations> acts;  // 1 (recompute) or one per layer
  std::vector<float> tmp;
  // Gradients.
  std::vector<float> dx, dh, dx2, dm, dt, dz, dex, dq, dk, dv, datt, dgate, dup, dact, du, dp,
      dpg, dple;
  // Per pair with permuted rows (LoraModel::hf_row_): B and dB in the base's row order.
  std::vector<std::vector<float>> b_base, db_base;
  std::vector<float> scratch;  // dequantisation tile
  Bf16Scratch bf16;            // --precision bf16: bf16 activations and weight tile
};

}  // namespace temper::train
