// Type dispatch for runtime/quant: one table row per type, row-parallel driver, float types.
#include <omp.h>

#include <cstring>

#include "core/error.h"
#include "quant/quant.h"
#include "quant/quant_common.h"

namespace temper::quant {
namespace {

using QuantizeFn = void (*)(const float* x, void* y, int64_t n, const float* imatrix);
using DequantizeFn = void (*)(const void* x, float* y, int64_t n);

struct Kernels {
  DType type;
  QuantizeFn quantize;
  QuantizeFn quantize_ref;
  DequantizeFn dequantize;
};

// Plain float types, as ggml_quantize_chunk converts them (ggml_fp32_to_fp16_row,
// ggml_fp32_to_bf16_row_ref, memcpy).
void quantize_f32(const float* x, void* y, int64_t n, const float*) { std::memcpy(y, x, size_t(n) * 4); }
// Half-float rows may start at any byte (a tile of a mapped file, a test's odd offset), so they
// are moved with memcpy: a uint16_t* there would be undefined behaviour (UBSan reports it).
void quantize_f16(const float* x, void* y, int64_t n, const float*) {
  auto* h = static_cast<unsigned char*>(y);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t v = f32_to_f16(x[i]);
    std::memcpy(h + 2 * i, &v, 2);
  }
}
void quantize_bf16(const float* x, void* y, int64_t n, const float*) {
  auto* h = static_cast<unsigned char*>(y);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t v = f32_to_bf16(x[i]);
    std::memcpy(h + 2 * i, &v, 2);
  }
}
void dequantize_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
uint16_t load_u16(const void* x, int64_t i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(x) + 2 * i, 2);
  return v;
}
void dequantize_f16(const void* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(load_u16(x, i));
}
void dequantize_bf16(const void* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_u16(x, i));
}

#define TEMPER_KERNELS(T, name) {DType::T, quantize_##name, quantize_##name##_ref, dequantize_##name}
constexpr Kernels kKernels[] = {
    {DType::kF32, quantize_f32, quantize_f32, dequantize_f32},
    {DType::kF16, quantize_f16, quantize_f16, dequantize_f16},
    {DType::kBF16, quantize_bf16, quantize_bf16, dequantize_bf16},
    TEMPER_KERNELS(kQ4_0, q4_0),
    TEMPER_KERNELS(kQ4_1, q4_1),
    TEMPER_KERNELS(kQ5_0, q5_0),
    TEMPER_KERNELS(kQ5_1, q5_1),
    TEMPER_KERNELS(kQ8_0, q8_0),
    TEMPER_KERNELS(kQ2_K, q2_K),
    TEMPER_KERNELS(kQ3_K, q3_K),
    TEMPER_KERNELS(kQ4_K, q4_K),
    TEMPER_KERNELS(kQ5_K, q5_K),
    TEMPER_KERNELS(kQ6_K, q6_K),
    TEMPER_KERNELS(kIQ4_NL, iq4_nl),
    TEMPER_KERNELS(kIQ4_XS, iq4_xs),
};
#undef TEMPER_KERNELS

const Kernels* find(DType t) {
  for (const Kernels& k : kKernels)
    if (k.type == t) return &k;
  return nullptr;
}

const Kernels& checked(DType t, int64_t n_per_row, const char* what) {
  const Kernels* k = find(t);
  TEMPER_CHECK(k, what, ": type ", dtype_name(t), " cannot be quantized by temper");
  const int be = dtype_traits(t).block_elems;
  TEMPER_CHECK(n_per_row > 0 && n_per_row % be == 0, what, ": row length ", n_per_row,
               " is not a positive multiple of the ", dtype_name(t), " block size ", be);
  return *k;
}

}  // namespace

bool supports(DType t) { return find(t) != nullptr; }

size_t row_bytes(DType t, int64_t n_per_row) {
  TEMPER_CHECK(n_per_row >= 0, "row length ", n_per_row, " is negative");
  return size_t(dtype_bytes(t, uint64_t(n_per_row)));
}

size_t quantize_rows(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                     const float* imatrix) {
  const Kernels& k = checked(t, n_per_row, "quantize_rows");
  const size_t rb = row_bytes(t, n_per_row);
  auto* out = static_cast<uint8_t*>(dst);
  // Each row is a pure function of its input and the imatrix, so any schedule gives the same bytes.
#pragma omp parallel for schedule(dynamic, 1) if (n_rows > 1)
  for (int64_t r = 0; r < n_rows; ++r) k.quantize(src + r * n_per_row, out + size_t(r) * rb, n_per_row, imatrix);
  return size_t(n_rows) * rb;
}

size_t quantize_rows_ref(DType t, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                         const float* imatrix) {
  const Kernels& k = checked(t, n_per_row, "quantize_rows_ref");
  const size_t rb = row_bytes(t, n_per_row);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t r = 0; r < n_rows; ++r) k.quantize_ref(src + r * n_per_row, out + size_t(r) * rb, n_per_row, imatrix);
  return size_t(n_rows) * rb;
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  checked(t, n, "dequantize_row").dequantize(src, dst, n);
}

}  // namespace temper::quant
