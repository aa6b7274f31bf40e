// Internal to runtime/quant: ggml block layouts and the scalar primitives every quantizer shares.
// Each primitive re-implements the ggml function named in its comment (ggml src/ggml-quants.c) with
// the same float operation order, so results are bit-identical. Compiled with -ffp-contract=off.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/half.h"

namespace temper::quant {

inline constexpr int kQK = 32;    // legacy block size (QK4_0 ... QK8_0, QK4_NL)
inline constexpr int kQK_K = 256; // k-quant super-block size (QK_K)
inline constexpr float kGroupMaxEps = 1e-15f;  // GROUP_MAX_EPS

// Block layouts (ggml src/ggml-common.h). fp16 fields are raw IEEE binary16 bits.
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct BlockIQ4_NL { uint16_t d; uint8_t qs[16]; };
struct BlockIQ4_XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210 && sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// IQ4_NL / IQ4_XS codebook (ggml-common.h kvalues_iq4nl).
inline constexpr int8_t kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// ggml stores d/dmin with GGML_FP32_TO_FP16 (round to nearest even); half.h matches it for every
// non-NaN input (checked against ggml in tests/quant). Decode is exact.
inline uint16_t to_f16(float f) { return f32_to_f16(f); }
inline float from_f16(uint16_t h) { return f16_to_f32(h); }

// nearest_int: round half to even via the 1.5*2^23 trick; for |f| > 4194303 (incl. inf/NaN) it
// returns the same wrapped value as ggml's release build, which has the range assert compiled out.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// C float->integer conversion as ggml's x86-64 build executes it (cvttss2si): truncation toward
// zero, and INT32_MIN for NaN and out-of-range values. ggml's casts like (int8_t)(x + 8.5f) then
// keep the low byte. Matters only for degenerate rows (subnormal max -> infinite inverse scale).
inline int32_t trunc_to_i32(float f) {
  return (f >= -2147483648.f && f < 2147483648.f) ? static_cast<int32_t>(f) : INT32_MIN;
}
inline int8_t trunc_to_i8(float f) { return static_cast<int8_t>(trunc_to_i32(f)); }
inline uint8_t trunc_to_u8(float f) { return static_cast<uint8_t>(trunc_to_i32(f)); }

// ggml's MAX(a, b) macro: (a > b ? a : b); differs from std::max on NaN and signed zeros.
inline float ggml_max(float a, float b) { return a > b ? a : b; }

// Index of the nearest codebook value, ties to the upper one (ggml best_index_int8).
int best_index_int8(int n, const int8_t* values, float x);

// The first element of largest magnitude (0 if n == 0 or all are 0 or NaN): the signed max that
// make_qx_quants scales by, found as ggml does.
inline float signed_absmax(int n, const float* x) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  return max;
}

// Symmetric search for a signed scale (ggml make_qx_quants). L gets l + nmax; qw may be null.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);
// Q3_K reference scale search with coordinate descent (ggml make_q3_quants).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse);
// Asymmetric scale+min search (ggml make_qkx2_quants; with `qkx3` the make_qkx3_quants variant,
// which differs only in its degenerate-range test). Returns the scale, *the_min = -min >= 0.
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                      float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                      bool use_mad, bool qkx3);
// Non-negative scale search for super-block scales (ggml make_qp_quants).
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights);

// The same searches with their candidate scales evaluated in SIMD lanes (search_fast.cpp);
// bit-identical results. iq4_trials_fast fills sumqx/sumq2[0..2*ntry] (arrays of >= 16) for the
// inverse scales (itry + values[0])/max, itry = -ntry..ntry.
float make_qx_quants_fast(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);
float make_qkx_quants_fast(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                           float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                           bool use_mad, bool qkx3);
void iq4_trials_fast(const float* xb, const float* w, float max, int ntry, float* sumqx, float* sumq2);

// Q4_K/Q5_K super-block search (search_k.cpp) for nblocks (1 or 2) consecutive super-blocks: per
// super-block the 8 sub-block make_qkx2_quants (qw null, with quantize_row_q*_K_ref's weights) or
// make_qkx3_quants (quantize_row_q*_K_impl's weights from qw; sw gets their sums) run side by
// side. Super-block b fills scales/mins/sw[8b..8b+7] and L[256b..] bit-identically; bit b of the
// result is clear when it needs the per-sub-block search instead (its outputs are then not set).
unsigned k4_search8(int nblocks, const float* x, const float* qw, int nmax, float rmin, float rdelta, int nstep,
                    float* scales, float* mins, float* sw, uint8_t* L);
// The K-quant requantization of 32 values: L = clamp(nearest_int((x + dm) / d), 0, nmax).
void k4_requantize32(const float* x, float d, float dm, int nmax, uint8_t* L);

// Which search implementations a row kernel uses: the scalar ports (the *_ref kernels) or the
// vectorised ones (the default kernels).
struct Searches {
  decltype(&make_qx_quants) qx;
  decltype(&make_qkx_quants) qkx;
  bool fast;
};
inline constexpr Searches kScalarSearches{make_qx_quants, make_qkx_quants, false};
inline constexpr Searches kFastSearches{make_qx_quants_fast, make_qkx_quants_fast, true};

// Σx² in index order, the way every ggml imatrix path computes its sigma2 numerator.
inline float sum_squares(const float* x, int64_t n) {
  float s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j] * x[j];
  return s;
}

// Per-type row kernels. `imatrix` (one weight per column, may be null) selects ggml's _impl path
// exactly as ggml's quantize_<type> does. The *_ref kernels are the plain scalar ports; the plain
// names may be vectorised but give identical bytes.
#define TEMPER_QUANT_KERNELS(T)                                                        \
  void quantize_##T(const float* x, void* y, int64_t n, const float* imatrix);         \
  void quantize_##T##_ref(const float* x, void* y, int64_t n, const float* imatrix);   \
  void dequantize_##T(const void* x, float* y, int64_t n);
TEMPER_QUANT_KERNELS(q4_0)
TEMPER_QUANT_KERNELS(q4_1)
TEMPER_QUANT_KERNELS(q5_0)
TEMPER_QUANT_KERNELS(q5_1)
TEMPER_QUANT_KERNELS(q8_0)
TEMPER_QUANT_KERNELS(q2_K)
TEMPER_QUANT_KERNELS(q3_K)
TEMPER_QUANT_KERNELS(q4_K)
TEMPER_QUANT_KERNELS(q5_K)
TEMPER_QUANT_KERNELS(q6_K)
TEMPER_QUANT_KERNELS(iq4_nl)
TEMPER_QUANT_KERNELS(iq4_xs)
#undef TEMPER_QUANT_KERNELS

}  // namespace temper::quant
