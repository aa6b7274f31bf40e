// Resource estimate of a training run (see estimate.h).
#include "train/estimate.h"

#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "forward/layers.h"
#include "train/gemm_bf16.h"
#include "train/kernels.h"

namespace temper::train {

namespace {

// kB fields of /proc/self/status ("RssAnon:   1234 kB"); 0 where absent.
double status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) * 1024;
  return 0;
}

// Mean seconds of `run` over at least 50 ms, after one warm-up call (OpenBLAS's thread start
// and buffers, first touch of the scratch).
template <class Run>
double seconds_per_run(const Run& run) {
  run();
  const auto t0 = std::chrono::steady_clock::now();
  int reps = 0;
  double secs = 0;
  do {
    run();
    ++reps;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (secs < 0.05);
  return secs / reps;
}

// sgemm FLOP/s on (m, k) · (k, n)ᵀ, the shape of one projection of the batch.
double measure_sgemm_rate(int64_t m, int64_t k, int64_t n) {
  std::vector<float> a(size_t(m * k), 0.5f), b(size_t(n * k), 0.25f), c(size_t(m * n));
  const auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, a.data(),
                int(k), b.data(), int(k), 0.0f, c.data(), int(n));
  };
  return 2.0 * double(m) * double(k) * double(n) / seconds_per_run(run);
}

// bf16 GEMM FLOP/s (gemm_bf16.h) on the same shape, W stored as bf16 as a bf16 base is: the
// projections' mix of two forward products (loss, recomputation) per input-gradient product.
double measure_bf16_rate(int64_t m, int64_t k, int64_t n) {
  std::vector<float> a(size_t(m * k), 0.5f), c(size_t(m * n), 0.125f);
  std::vector<uint16_t> b(size_t(n * k), 0x3e80);  // bf16 0.25
  const forward::Matrix w{reinterpret_cast<const uint8_t*>(b.data()), DType::kBF16, n, k,
                          size_t(k) * sizeof(uint16_t)};
  Bf16Scratch scratch;
  const auto run = [&] {
    matmul_forward_bf16(c.data(), a.data(), w, m, n, scratch);
    matmul_forward_bf16(c.data(), a.data(), w, m, n, scratch);
    matmul_backward_bf16(a.data(), c.data(), n, w, m, /*accumulate=*/false, scratch);
  };
  return 3 * 2.0 * double(m) * double(k) * double(n) / seconds_per_run(run);
}

// Seconds for one layer's attention of one `t`-token example as a step runs it: the forward
// twice (loss and recomputation) and the backward once, on this model's head shape.
double measure_attention_seconds(const LayerConfig& l, int64_t t) {
  const int64_t qd = int64_t(l.n_head) * l.head_dim, kvd = int64_t(l.n_head_kv) * l.head_dim;
  std::vector<float> q(size_t(t * qd), 0.1f), k(size_t(t * kvd), 0.2f), v(size_t(t * kvd), 0.3f);
  std::vector<float> out(q.size()), lse(size_t(t * l.n_head)), dq(q.size()), dk(k.size()),
      dv(v.size()), dout(q.size(), 0.01f);
  std::vector<int32_t> first_key(size_t(t), 0);
  const float scale = 1.0f / std::sqrt(float(l.head_dim));
  const auto run = [&] {
    for (int pass = 0; pass < 2; ++pass)
      forward::attention_forward_masked(out.data(), lse.data(), q.data(), k.data(), v.data(),
                                        first_key.data(), t, 0, l.n_head, l.n_head_kv,
                                        l.head_dim, l.window, scale);
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                       v.data(), out.data(), lse.data(), first_key.data(), t, l.n_head,
                       l.n_head_kv, l.head_dim, l.window, scale);
  };
  return seconds_per_run(run);
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", s);
  return buf;
}

}  // namespace

double peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024;  // kilobytes on Linux
}

TrainCost estimate_train_cost(const ModelConfig& cfg, const TensorSource& base,
                              const LoraModel& lora, int batch, int grad_accum, int seq) {
  TrainCost c;
  const double n = double(batch) * seq;  // tokens per micro-batch
  const double H = cfg.d_model, r = lora.config().rank, L = cfg.n_layer, V = cfg.n_vocab;
  double qd = 0, kvd = 0, ff = 0, nh = 0, proj_params = 0, attn_flops = 0;
  for (const LayerConfig& l : cfg.layers) {
    qd = std::max(qd, double(l.n_head) * l.head_dim);
    kvd = std::max(kvd, double(l.n_head_kv) * l.head_dim);
    ff = std::max(ff, double(l.d_ff));
    nh = std::max(nh, double(l.n_head));
    const double lq = double(l.n_head) * l.head_dim, lkv = double(l.n_head_kv) * l.head_dim;
    proj_params += H * lq * 2 + H * lkv * 2 + 3 * H * l.d_ff;
    // Scores and weighted values, 2·lq·ctx each way per token at an average context of seq/2
    // (causal): forward twice (loss and recomputation) and a backward of twice the forward.
    attn_flops += 4 * (4 * lq * (seq / 2.0));
  }
  for (const LoraPair& p : lora.pairs()) c.trainable += int64_t(p.a.size() + p.b.size());
  c.tokens_per_step = int64_t(n) * grad_accum;
  for (const TensorInfo& t : base.tensors()) c.base_bytes += double(t.nbytes);
  // The process so far minus the base's mapped pages (counted in full above): anonymous memory
  // (tokenizer, data, adapters) and the mapped libraries.
  c.process_bytes = status_bytes("RssAnon") + std::min(status_bytes("RssFile"), 64.0 * (1 << 20));
  // decoder_train.cpp: layer inputs for L+1 layers; one layer's h1, x2, h2, tmp, dx, dh (H),
  // q, att, dq, datt (qd), k, v, dk, dv (kvd), gate, up, act and their gradients (F), the
  // attention's log-sum-exp (heads), the adapters' x·Aᵀ per target and its gradient (r).
  c.activation_bytes =
      4 * n * ((L + 1) * H + 6 * H + 4 * qd + 4 * kvd + 6 * ff + nh + (kNumTargets + 1) * r);
  // One layer's kept activations (decoder_train.h LayerActivations): h1, a_raw, x2, h2, md, m
  // (H), q_raw, q, att (qd), k_raw, v_raw, kc, vc (kvd), gate, up, act (F), lse, x·Aᵀ per
  // target; with experts beside the MLP z, ex_in, m2 (H); with PLE pp (H), pg, pa, ple_l (P).
  bool beside = false;
  for (const LayerConfig& l : cfg.layers) beside = beside || l.ffn == FfnKind::kDenseAndMoe;
  const double P = cfg.ple_dim;
  const double layer_set = 4 * n * ((6 + (beside ? 3 : 0) + (P > 0 ? 1 : 0)) * H + 3 * qd +
                                    4 * kvd + 3 * ff + nh + kNumTargets * r + 3 * P);
  c.kept_bytes = std::max(0.0, L - 1) * layer_set;
  // Tiles of dequantised weight rows (2^20 floats), the cross-entropy's logits tile
  // (tokens × 2^20/H rows) and its copies of h and dL/dh.
  c.scratch_bytes = 4 * ((1 << 20) + n * std::min(V, double(1 << 20) / H) + 2 * n * H);
  c.adapter_bytes = 4.0 * 4 * double(c.trainable);  // A/B, gradients, m, v in f32
  c.peak_rss_bytes =
      c.process_bytes + c.base_bytes + c.activation_bytes + c.scratch_bytes + c.adapter_bytes;
  // Per token: projections forward twice (loss, recomputation) and their input gradient (2
  // FLOPs per weight each), the output projection forward and backward once, attention.
  c.flops_per_step = double(c.tokens_per_step) * (3 * 2 * proj_params + 2 * 2 * H * V + attn_flops);
  const double proj_flops = double(c.tokens_per_step) * 3 * 2 * proj_params,
               head_flops = double(c.tokens_per_step) * 2 * 2 * H * V;
  const int64_t m = int64_t(std::min(n, 512.0)), wide = int64_t(std::max(ff, H));
  c.flops_per_s = measure_sgemm_rate(m, int64_t(H), wide);
  c.proj_flops_per_s = lora.config().precision == Precision::kBf16 ? measure_bf16_rate(m, int64_t(H), wide)
                                                                   : c.flops_per_s;
  // Attention runs its own kernels, far below sgemm's rate at small head sizes: timed on a
  // shorter example where --seq is long, scaled by the context (cost ∝ tokens × context).
  const int64_t t = std::min<int64_t>(seq, 512);
  const double per_example = cfg.layers.empty() ? 0
                           : measure_attention_seconds(cfg.layers[0], t) * double(seq) / double(t) *
                                 double(seq) / double(t);
  c.attention_seconds = per_example * L * double(batch) * grad_accum;
  c.seconds_per_step = proj_flops / c.proj_flops_per_s + head_flops / c.flops_per_s + c.attention_seconds;
  c.recompute_matmul_flops = double(c.tokens_per_step) * 2 * proj_params;
  c.recompute_attention_flops = double(c.tokens_per_step) * attn_flops / 4;
  return c;
}

TrainCost without_recompute(TrainCost c) {
  if (!c.recompute) return c;
  c.recompute = false;
  c.activation_bytes += c.kept_bytes;
  c.peak_rss_bytes += c.kept_bytes;
  // The recomputed projections at the measured sgemm rate, attention's share as timed.
  c.seconds_per_step -= c.recompute_matmul_flops / c.proj_flops_per_s + c.attention_seconds / 4;
  c.flops_per_step -= c.recompute_matmul_flops + c.recompute_attention_flops;
  return c;
}

namespace {

double mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("MemAvailable:", 0) == 0) return std::stod(line.substr(13)) * 1024;
  return 0;
}

}  // namespace

RecomputeChoice choose_recompute(const std::string& mode, const TrainCost& c) {
  TEMPER_CHECK(mode == "always" || mode == "never" || mode == "auto",
               "--recompute: '", mode, "' is not always, never or auto");
  if (mode == "always") return {true, "--recompute always"};
  if (mode == "never")
    return {false, cat("--recompute never (", human_bytes(c.kept_bytes), " more activations)")};
  const TrainCost kept = without_recompute(c);
  const double avail = mem_available_bytes();
  const double budget = avail - std::max(0.1 * avail, double(1 << 30));
  const std::string why = cat("estimated peak without recomputation ",
                              human_bytes(kept.peak_rss_bytes), ", ", human_bytes(c.kept_bytes),
                              " more than with it; available ", human_bytes(avail),
                              " - margin = ", human_bytes(std::max(budget, 0.0)));
  if (kept.peak_rss_bytes <= budget) return {false, cat("activations kept (", why, ")")};
  return {true, cat("activations recomputed (", why, ")")};
}

std::string describe_cost(const TrainCost& c) {
  return cat("trainable parameters: ", c.trainable, "\n",
             "estimated peak RSS: ", human_bytes(c.peak_rss_bytes), " (base ",
             human_bytes(c.base_bytes), ", activations ", human_bytes(c.activation_bytes),
             ", scratch ", human_bytes(c.scratch_bytes), ", adapters + AdamW ",
             human_bytes(c.adapter_bytes), ", process ", human_bytes(c.process_bytes), ")\n",
             "estimated time per step: ", seconds_text(c.seconds_per_step), " (",
             c.flops_per_step / 1e9, " GFLOP: projections at ", c.proj_flops_per_s / 1e9,
             " GFLOP/s", c.proj_flops_per_s != c.flops_per_s ? " (bf16)" : "", " and the output head at ",
             c.flops_per_s / 1e9, " GFLOP/s measured for this shape, attention ", seconds_text(c.attention_seconds),
             " timed; ", c.tokens_per_step, " tokens per step, ",
             std::lround(double(c.tokens_per_step) / c.seconds_per_step), " tokens/s)\n");
}

}  // namespace temper::train
