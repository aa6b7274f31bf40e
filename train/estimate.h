// `temper train --dry-run`: what a run will cost, printed before any work. Peak RSS is
// modelled as the process before training (code, tokenizer, data) + the base's weights (mapped
// or loaded, every page touched once per step) + one micro-batch's activations (the layer
// inputs kept for recomputation plus one layer's buffers: decoder_train.cpp) + the scratch of
// the tiled products and the cross-entropy + adapters, gradients and AdamW moments. Time per
// step is the products' floating-point work at the rate OpenBLAS reaches here on the model's
// own projection shape, plus the attention kernels timed on the model's head shape (~0.1 s of
// measurement in all).
#pragma once
#include <cstdint>
#include <string>

#include "formats/tensor_source.h"
#include "model/config.h"
#include "train/train.h"

namespace temper::train {

struct TrainCost {
  int64_t trainable = 0;       // adapter parameters
  int64_t tokens_per_step = 0; // input tokens per optimiser step (upper bound: full --seq)
  double process_bytes = 0, base_bytes = 0, activation_bytes = 0, scratch_bytes = 0,
         adapter_bytes = 0;
  double peak_rss_bytes = 0;    // the sum of the above
  double flops_per_step = 0;
  double flops_per_s = 0;       // measured sgemm rate on the model's shape (the output head)
  double proj_flops_per_s = 0;  // the projections' rate: bf16 GEMM's with --precision bf16
  double attention_seconds = 0; // per step, from timing the attention kernels on this shape
  double seconds_per_step = 0;  // products' FLOPs at those rates + attention_seconds
  // The above are with activation recomputation. Without it (LoraModel::set_recompute): every
  // layer's activations kept (kept_bytes more), the layers' forward run once instead of twice
  // (the recomputed projections' and attention's FLOPs less; attention's forward is 1 of its 4
  // forward-equivalents, so a quarter of attention_seconds).
  double kept_bytes = 0, recompute_matmul_flops = 0, recompute_attention_flops = 0;
  bool recompute = true;  // which of the two the figures above describe
};

// `c` without recomputation (see TrainCost).
TrainCost without_recompute(TrainCost c);

// --recompute always|never|auto: whether to recompute activations, and why (one line). auto
// keeps them when the estimated peak without recomputation stays under the memory available
// now (MemAvailable) minus a margin of 10% or 1 GiB, whichever is larger.
struct RecomputeChoice {
  bool recompute = true;
  std::string reason;
};
RecomputeChoice choose_recompute(const std::string& mode, const TrainCost& c);

// `batch` examples of up to `seq` tokens per micro-batch, `grad_accum` micro-batches per step.
TrainCost estimate_train_cost(const ModelConfig& cfg, const TensorSource& base,
                              const LoraModel& lora, int batch, int grad_accum, int seq);

// The lines --dry-run prints.
std::string describe_cost(const TrainCost& c);

// This process's peak resident set so far (getrusage), in bytes.
double peak_rss_bytes();

}  // namespace temper::train
