// Bits per weight: temper's one definition, used by quantize (plan and summary), compare (table,
// JSON, HTML report) and inspect. It is llama.cpp's: llama_model_loader::print_info prints
// "file size = ... (X BPW)" as the sum of ggml_nbytes over the tensors × 8 / the sum of their
// elements. Tensor bytes, not file bytes: metadata (a GGUF's vocabulary, an HDF5 file's
// headers, alignment padding) would otherwise count as weights and make small models look
// several bits heavier than their blocks are.
#pragma once
#include <cstdint>

#include "formats/tensor_source.h"

namespace temper {

// Parameters and stored bytes summed over every tensor of a source (stored dtype: a bf16
// tensor counts 2 bytes an element, a Q4_K tensor its blocks; an HDF5 chunk's compression
// does not change the figure).
struct TensorTotals {
  uint64_t n_params = 0;
  uint64_t bytes = 0;
};

inline TensorTotals tensor_totals(const TensorSource& src) {
  TensorTotals t;
  for (const TensorInfo& info : src.tensors()) {
    t.n_params += info.numel();
    t.bytes += info.nbytes;
  }
  return t;
}

// 8 × tensor_bytes / n_params; 0 for a model without parameters.
inline double bits_per_weight(uint64_t tensor_bytes, uint64_t n_params) {
  return n_params ? 8.0 * double(tensor_bytes) / double(n_params) : 0.0;
}

}  // namespace temper
