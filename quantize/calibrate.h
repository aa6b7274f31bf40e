// `temper quantize --calibrate DATA`: quantization tuned on calibration text. The model runs
// block by block over the calibration chunks; every block's inputs come from the blocks before
// it *as quantized* (and from the quantized token embeddings), so each block's quantization sees
// and corrects the error that reaches it. Inside a block the matrices are quantized in the order
// the data flows (q/k/v, o, gate/up, down), each on inputs computed with the block's matrices
// already quantized, by GPTQ with ggml's block scales (quantize/gptq.h). Memory: the model, the
// chunks' hidden states (tokens × d_model floats) and one block's K × K input moments.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/open_model.h"

namespace temper {

struct CalibrateOptions {
  std::string data;          // text, or chat JSONL (.jsonl) rendered with the model's template
  int64_t tokens = 8192;     // calibration tokens (whole chunks of ctx)
  int ctx = 512;             // chunk length (capped at the model's training context)
  int iters = 2;             // GPTQ passes per matrix (GptqOptions::passes; measured in README)
  uint64_t seed = 0;         // which chunks of a longer text are used: 0 = the first ones
  std::string dump_dir;      // tests: each matrix group's H (K × K f64 .npy) and the tensor names
  // Importance weights (d_model) the file's token embedding is rounded with, so block 0 is tuned
  // on the embedding the file will hold; empty = none (--target-bpw collects them).
  std::vector<float> token_embd_weights;
};

struct CalibratedTensor {
  DType type;
  std::vector<uint8_t> bytes;  // rows in the model's own row order (HF for HF/.h5 input)
  double error_gptq = 0, error_plain = 0;
  bool used_gptq = false;
};

struct CalibrationResult {
  std::map<std::string, CalibratedTensor> tensors;  // by GGUF name
  int ctx = 0, chunks = 0;
  int64_t tokens = 0, available = 0;
};

// Checks everything that can be wrong with the options and the data before any work:
// unpackable types (named), data shorter than one chunk (says how many tokens are missing),
// chat data that renders to nothing, architectures with blocks the tuner does not run.
// `types`: the quantized type of every matrix (GGUF name) the file will hold.
CalibrationResult calibrate_model(const OpenedModel& model, const std::map<std::string, DType>& types,
                                  const CalibrateOptions& opt);

}  // namespace temper
