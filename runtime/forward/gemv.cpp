// Small-batch product against stored weights (see gemv.h): path selection, the portable
// kernel and the double-precision oracle.
#include "forward/gemv.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/quant.h"

namespace temper::forward {
namespace {

std::atomic<GemvPath> g_path{GemvPath::kAuto};

// The path the environment asks for: TEMPER_GEMV_PATH=portable|avx2|avx512, else
// TEMPER_PORTABLE_KERNELS=1 (portable), else kAuto.
GemvPath path_from_env() {
  if (const char* e = std::getenv("TEMPER_GEMV_PATH"); e && *e) {
    if (std::strcmp(e, "portable") == 0) return GemvPath::kPortable;
    if (std::strcmp(e, "avx2") == 0) return GemvPath::kAvx2;
    if (std::strcmp(e, "avx512") == 0) return GemvPath::kAvx512;
    throw Error("TEMPER_GEMV_PATH: '" + std::string(e).substr(0, 40) + "' is not one of portable, avx2, avx512");
  }
  const char* e = std::getenv("TEMPER_PORTABLE_KERNELS");
  return e && *e && std::strcmp(e, "0") != 0 ? GemvPath::kPortable : GemvPath::kAuto;
}

void require_available(GemvPath p) {
  if (p == GemvPath::kAvx2 && !gemv_avx2_available())
    throw Error("gemv: the AVX2 path was requested but this CPU lacks AVX2/FMA/F16C");
  if (p == GemvPath::kAvx512 && !gemv_avx512_available())
    throw Error("gemv: the AVX-512 path was requested but this CPU lacks AVX-512 F/BW/VL (or AVX2/FMA/F16C)");
}

// 256 elements is a whole number of blocks of every type (k-quant super-blocks are 256), so a
// row is walked in 256-element chunks plus a tail that is still whole blocks.
constexpr int64_t kChunk = 256;

}  // namespace

// Portable kernel: one chunk dequantised into an L1 buffer, then dotted with every token.
// Eight independent partial sums per token so the compiler can vectorise without reassociating.
void detail::gemv_rows_portable(const Matrix& w, int64_t r0, int64_t r1, const float* x, int64_t T,
                        float* y, int64_t ldy, const float*) {
  const int64_t K = w.cols;
  const size_t chunk_bytes = quant::row_bytes(w.dtype, kChunk);
  alignas(32) float buf[kChunk];
  for (int64_t r = r0; r < r1; ++r) {
    float acc[kGemvMaxTokens][8] = {};
    const uint8_t* src = w.row(r);
    for (int64_t k0 = 0; k0 < K; k0 += kChunk, src += chunk_bytes) {
      const int64_t n = std::min(kChunk, K - k0);
      quant::dequantize_row(w.dtype, src, buf, n);
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + t * K + k0;
        float* a = acc[t];
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
          for (int j = 0; j < 8; ++j) a[j] += buf[i + j] * xt[i + j];
        for (; i < n; ++i) a[0] += buf[i] * xt[i];
      }
    }
    for (int64_t t = 0; t < T; ++t) {
      const float* a = acc[t];
      y[t * ldy + r] = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    }
  }
}

bool gemv_avx2_available() {
  // F16C through CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports has no "f16c".
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

bool gemv_avx512_available() {
  // libgcc's __builtin_cpu_supports reports AVX-512 only if the OS saves the zmm state (XCR0).
  static const bool ok = gemv_avx2_available() && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return ok;
}

bool gemv_avx512_supports(DType t) {
  switch (t) {
    case DType::kF16: case DType::kBF16: case DType::kQ8_0: case DType::kQ4_0:
      return true;
    default:
      return false;
  }
}

const char* gemv_path_name(GemvPath p) {
  switch (p) {
    case GemvPath::kAuto: return "auto";
    case GemvPath::kPortable: return "portable";
    case GemvPath::kAvx2: return "avx2";
    case GemvPath::kAvx512: return "avx512";
  }
  return "?";
}

bool gemv_avx2_supports(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ8_0:
    case DType::kQ4_0: case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1:
    case DType::kIQ4_NL: case DType::kIQ4_XS:
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void set_gemv_path(GemvPath p) {
  require_available(p);
  g_path = p;
}

GemvPath gemv_path_for(DType t) {
  GemvPath p = g_path.load();
  if (p == GemvPath::kAuto) {
    p = path_from_env();
    require_available(p);
  }
  if (p == GemvPath::kAuto)
    p = gemv_avx512_available() ? GemvPath::kAvx512 : gemv_avx2_available() ? GemvPath::kAvx2 : GemvPath::kPortable;
  if (p == GemvPath::kAvx512 && !gemv_avx512_supports(t)) p = GemvPath::kAvx2;
  if (p == GemvPath::kAvx2 && !gemv_avx2_supports(t)) p = GemvPath::kPortable;
  return p;
}

void gemv_forward(float* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy) {
  const int64_t N = w.rows, K = w.cols;
  if (n_tokens < 1 || n_tokens > kGemvMaxTokens)
    throw Error("gemv: n_tokens " + std::to_string(n_tokens) + " outside [1, " + std::to_string(kGemvMaxTokens) + "]");
  if (N == 0) return;
  const GemvPath path = gemv_path_for(w.dtype);
  const bool avx2 = path == GemvPath::kAvx2;
  const auto rows = avx2 ? detail::gemv_rows_avx2
                    : path == GemvPath::kAvx512 ? detail::gemv_rows_avx512 : detail::gemv_rows_portable;
  // Sums of each token's activations over 32-element sub-blocks, shared by all rows.
  thread_local std::vector<float> xsum;
  const float* xsum32 = nullptr;
  if (avx2 && detail::gemv_xsum32_needed(w.dtype)) {
    xsum.resize(size_t(n_tokens * (K / 32)));
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t j = 0; j < K / 32; ++j) {
        float s = 0;
        for (int l = 0; l < 32; ++l) s += x[t * K + 32 * j + l];
        xsum[size_t(t * (K / 32) + j)] = s;
      }
    xsum32 = xsum.data();
  }
  thread_local std::vector<float> xperm;
  if (avx2 && detail::gemv_x_permuted(w.dtype)) {
    xperm.resize(size_t(n_tokens * K));
    for (int64_t g = 0; g < n_tokens * K; g += 32)
      for (int b = 0; b < 4; ++b)
        for (int i = 0; i < 8; ++i) xperm[size_t(g + 8 * b + i)] = x[g + 4 * i + b];
    x = xperm.data();
  }
  // Skip threading for products too small to pay for waking the pool.
  const bool parallel = N * K >= (int64_t{1} << 16) && N >= 2 * kGemvRowChunk;
  const int64_t n_chunks = (N + kGemvRowChunk - 1) / kGemvRowChunk;
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t r0 = c * kGemvRowChunk;
    rows(w, r0, std::min(N, r0 + kGemvRowChunk), x, n_tokens, y, ldy, xsum32);
  }
}

void gemv_reference(double* y, const float* x, const Matrix& w, int64_t n_tokens, int64_t ldy) {
  const int64_t K = w.cols;
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t r = 0; r < w.rows; ++r) {
    quant::dequantize_row(w.dtype, w.row(r), row.data(), K);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(row[size_t(k)]) * double(x[t * K + k]);
      y[t * ldy + r] = s;
    }
  }
}

}  // namespace temper::forward
