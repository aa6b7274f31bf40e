// ggml itself as an independent reference: libggml-base.so from the pinned node-llama-cpp build
// (scripts/setup-llama-ref.sh), loaded with dlopen. Used by tests/quant and bench/bench_quant only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace temper::test {

class GgmlRef {
 public:
  // Loads the library once; throws temper::Error naming the path if it or a symbol is missing.
  static GgmlRef& get();

  // ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix).
  size_t quantize_chunk(DType t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                        const float* imatrix) const;
  // ggml_get_type_traits(type)->to_float.
  void to_float(DType t, const void* src, float* dst, int64_t n) const;
  uint16_t fp32_to_fp16(float f) const;
  uint16_t fp32_to_bf16(float f) const;
  size_t row_size(DType t, int64_t n_per_row) const;

 private:
  GgmlRef();
  struct Fns;
  Fns* fns_;
};

}  // namespace temper::test
