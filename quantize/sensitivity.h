// `quantize --target-bpw` / `--max-kld`: how much each tensor's quantization costs the model, as
// the mean KL(full-precision next-token distribution || the distribution with only that tensor
// quantized to a type), on calibration chunks. The full-precision run caches the hidden states
// entering every block and the reference log-probabilities once; a tensor of block l is then
// measured by running blocks l.. only. The same run collects the importance matrix (mean squared
// input activation per column of every blk.* matrix, as `temper imatrix` does, and of the output
// head, so a tied embedding is weighted for its output role), which the quantized candidates
// use, as the written file will.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/open_model.h"
#include "quantize/imatrix.h"

namespace temper {

class Progress;

struct SensitivityOptions {
  std::string data;         // text, or chat JSONL rendered with the model's template
  int64_t tokens = 2048;    // calibration tokens (whole chunks of ctx)
  int ctx = 512;            // chunk length (capped at the model's training context)
  uint64_t seed = 0;        // which chunks of a longer text: 0 = the first ones
};

class KlProbe {
 public:
  // Runs the full-precision model over the chunks. `imatrix`: importance weights to quantize the
  // candidates with; null = the ones this run collects. Throws Error for what calib::load_chunks
  // and calib::check_dense_blocks refuse.
  KlProbe(const OpenedModel& om, const SensitivityOptions& opt, const Imatrix* imatrix);
  ~KlProbe();
  // The importance matrix the candidates are quantized with (collected here unless given).
  const Imatrix& imatrix() const;
  int ctx() const;
  int chunks() const;
  // Is `gguf_name` a matrix this probe can quantize (a dense block's, the embedding or output)?
  bool has_tensor(const std::string& gguf_name) const;
  // Mean KL per token with only `gguf_name` quantized to each of `types`; each block run (per
  // chunk) adds 1 to `progress` (may be null).
  std::vector<double> sensitivity(const std::string& gguf_name, const std::vector<DType>& types, Progress* progress);
  // Block runs sensitivity() will take for these tensors (for a progress bar).
  uint64_t cost(const std::string& gguf_name, size_t n_types) const;
  // Mean KL per token with every tensor of `types` quantized at once (the whole model runs).
  double mix_kl(const std::map<std::string, DType>& types);

 private:
  struct State;
  std::unique_ptr<State> st_;
};

}  // namespace temper
