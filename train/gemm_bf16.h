// bf16 compute for the trainer's base-weight products, as PyTorch's autocast runs them: both
// operands rounded to bf16 (round to nearest, ties to even), products accumulated in f32,
// through oneDNN's matmul (the library PyTorch's CPU matmul uses; it picks AVX-512-BF16 or AMX
// kernels at run time). bf16 base weights are read in place; every other stored type is
// dequantised one bounded tile of rows at a time straight to bf16. The adapters, their
// gradients and everything else of the training pass stay f32.
//
// Dimension glossary: n = tokens, K = W.cols (input features), N = W.rows (output features).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "forward/weights.h"

namespace temper::train {

enum class Precision : uint8_t { kF32, kBf16 };
std::string_view precision_name(Precision p);  // "f32", "bf16"

// True when this CPU has native bf16 dot products (AVX-512-BF16 or AMX-BF16, as oneDNN's
// effective ISA reports them) and TEMPER_NO_BF16 is unset or "0". Elsewhere oneDNN would
// emulate bf16 slower than f32 sgemm, so callers fall back to f32.
bool bf16_native();
// oneDNN's version and effective ISA, e.g. "oneDNN 2.6.3, avx512_core_bf16" (for the log).
std::string gemm_bf16_describe();

// Working memory of the products below, reused across calls (no per-call allocation once
// the shapes repeat): activations in bf16 and one tile of dequantised weights.
struct Bf16Scratch {
  std::vector<uint16_t> act, tile;
};

// y (n, ldy) columns [0, N) = bf16(x) (n, K) · bf16(W)ᵀ, f32 accumulation.
void matmul_forward_bf16(float* y, const float* x, const forward::Matrix& w, int64_t n,
                         int64_t ldy, Bf16Scratch& s);
// dx (n, K) = bf16(dy) (n, N; rows ldy apart) · bf16(W), or += when accumulate.
void matmul_backward_bf16(float* dx, const float* dy, int64_t ldy, const forward::Matrix& w,
                          int64_t n, bool accumulate, Bf16Scratch& s);

// out[i] = bf16 of in[i], rounded to nearest, ties to even (OpenMP over chunks).
void round_to_bf16(uint16_t* out, const float* in, int64_t count);

}  // namespace temper::train
