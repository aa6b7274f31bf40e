// Q4_0 lattice detection and exact encoding (see qat.h).
//
// What "on the lattice" means, and the tolerance it implies. ggml decodes a Q4_0 element as
// (nibble - 8)·d in f32; d has 11 significant bits and |q| <= 8 needs 4, so d·q is exact in
// f32. A QAT checkpoint stores those values in its own dtype, which may round them: with p
// significant bits (bf16 8, f16 11, f32 24) the stored x = d·q·(1 + e), |e| <= u = 2^-p. So we
// call a block on the lattice when some fp16 d and integers q_i in [-8, 7] give
// stored(d·q_i) == x_i for every element: the tolerance is exactly the checkpoint's rounding,
// |x_i/d - q_i| <= 8u (1/32 for bf16, 1/256 for f16, 0 for f32), and no looser. The Q4_0 block
// written from that (d, q) decodes to d·q_i, which is x_i itself for f32 storage and the value
// x_i was rounded from (so it stores back to x_i bit for bit) for bf16/f16.
//
// Finding d. The block's largest |x|, m, is d·q_m for some q_m in [-8, 7]\{0}; we try each
// (largest |q_m| first: the finest lattice) with d near m/q_m, refined by least squares over
// the block (near_lattice). Since the values carry the rounding, either estimate is d(1 + e)
// with |e| <= u: for bf16 up to 2^-8·|d|, i.e. up to 8 fp16 ulps of d (an fp16 ulp is 2^-10 to
// 2^-11 of the value), so we try the 9 fp16 neighbours on each side of it (2 for f16 storage,
// 1 for exact storage). For each candidate d,
// q_i = round(x_i/d) is the only integer within 1/32 of x_i/d, so one check per element decides.
//
// Why a normal checkpoint is not detected. With bf16 storage, each of the other 31 elements
// must be one of the <= 16 values stored(d·q) out of the roughly 2^7 bf16 values per binade in
// the few binades below m: a chance of about 16/400 per element, (0.04)^31 ~ 1e-43 per
// candidate, ~1e-40 over the 15 x 19 candidates. Finer storage only lowers it.
#include "quantize/qat.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "core/half.h"
#include "core/error.h"

namespace temper {
namespace {

float stored(float v, DType storage) {
  switch (storage) {
    case DType::kBF16: return bf16_to_f32(f32_to_bf16(v));
    case DType::kF16: return f16_to_f32(f32_to_f16(v));
    default: return v;  // f32, or a block type whose decoded values are f32 products
  }
}

// Unit roundoff u of the storage (relative error of one rounding).
float unit_roundoff(DType storage) {
  switch (storage) {
    case DType::kBF16: return 0x1p-8f;
    case DType::kF16: return 0x1p-11f;
    default: return 0;
  }
}

// A quick necessary condition for a scale near d0 = m/q_m: with the true d, d0 = d(1 + e) and
// x_i = d·q_i(1 + e_i), |e|, |e_i| <= u, so |x_i/d0 - q_i| <= |q_i|·2u/(1 - u) < 17u (|q_i| <= 8).
// Most candidates of a block off the lattice fail it within an element or two, before the exact
// search over fp16 neighbours (19 trials for bf16) runs.
// It returns 0 when the block fails, else the least-squares scale sum(x·q)/sum(q²) = d·sum(q²(1 + e_i))/sum(q²):
// also within u of d, so the same fp16 window around it holds d, and the rounding errors
// average out, so d is usually its nearest fp16 value or the next one.
float near_lattice(const float* x, float d0, float tol) {
  const float inv = 1 / d0;
  double xq = 0, qq = 0;
  for (int i = 0; i < kQ4_0BlockElems; ++i) {
    const float r = x[i] * inv, q = std::nearbyint(r);
    if (q < -8 || q > 7 || std::fabs(r - q) > tol) return 0;
    xq += double(x[i]) * q;
    qq += double(q) * q;
  }
  return float(xq / qq);
}

int neighbours_to_try(DType storage) {
  switch (storage) {
    case DType::kBF16: return 9;
    case DType::kF16: return 2;
    default: return 1;
  }
}

// q_i for every element if d reproduces the block, else false. `==` treats -0 and +0 alike,
// as decoding a zero nibble does not choose the sign of 0.
bool quantize_exactly(const float* x, float d, DType storage, int8_t* q) {
  for (int i = 0; i < kQ4_0BlockElems; ++i) {
    const float r = std::nearbyint(x[i] / d);
    if (r < -8 || r > 7 || stored(d * r, storage) != x[i]) return false;
    q[i] = int8_t(r);
  }
  return true;
}

void write_block(uint16_t d_bits, const int8_t* q, uint8_t* block) {
  std::memcpy(block, &d_bits, 2);  // ggml_half, little-endian
  for (int j = 0; j < kQ4_0BlockElems / 2; ++j)
    block[2 + j] = uint8_t((q[j] + 8) | ((q[j + kQ4_0BlockElems / 2] + 8) << 4));
}

}  // namespace

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * fraction);
  return buf;
}

bool fit_q4_0_block(const float* x, DType storage, uint8_t* block) {
  float m = 0;
  for (int i = 0; i < kQ4_0BlockElems; ++i)
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  int8_t q[kQ4_0BlockElems] = {};
  if (m == 0) {  // all zeros: d = 0, every nibble 8, as ggml writes it
    write_block(0, q, block);
    return true;
  }
  if (!std::isfinite(m)) return false;
  const int k = neighbours_to_try(storage);
  // 17u, plus 2^-16 for the f32 arithmetic of x·(1/d0) (with u = 0: exact storage).
  const float tol = 17 * unit_roundoff(storage) + 0x1p-16f;
  // q_m, finest lattice first (when every q is even, 2d with q/2 fits the block too).
  static constexpr int kQm[] = {-8, 7, -7, 6, -6, 5, -5, 4, -4, 3, -3, 2, -2, 1, -1};
  for (int q_m : kQm) {
    const float d_fit = near_lattice(x, m / float(q_m), tol);
    if (d_fit == 0) continue;
    const uint16_t h0 = f32_to_f16(d_fit);
    const uint16_t sign = h0 & 0x8000u;
    const int mag0 = h0 & 0x7fff;
    for (int step = 0; step <= 2 * k; ++step) {
      const int h = mag0 + (step + 1) / 2 * (step % 2 ? 1 : -1);  // 0, +1, -1, +2, -2, ... ulps
      if (h < 1 || h >= 0x7c00) continue;                          // zero, inf and nan are no scale
      const uint16_t bits = uint16_t(sign | h);
      if (quantize_exactly(x, f16_to_f32(bits), storage, q)) {
        write_block(bits, q, block);
        return true;
      }
    }
  }
  return false;
}

void measure_q4_0_lattice(const float* x, int64_t n, DType storage, LatticeStats& stats) {
  const int64_t n_blocks = n / kQ4_0BlockElems;
  int64_t zero = 0, fit = 0;
#pragma omp parallel for schedule(static) reduction(+ : zero, fit) if (n_blocks > 4096)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * kQ4_0BlockElems;
    bool all_zero = true;
    for (int i = 0; i < kQ4_0BlockElems; ++i) all_zero = all_zero && xb[i] == 0;
    uint8_t block[kQ4_0BlockBytes];
    if (all_zero) ++zero;
    else if (fit_q4_0_block(xb, storage, block)) ++fit;
  }
  stats.blocks += n_blocks;
  stats.zero += zero;
  stats.on_lattice += fit;
}

int64_t make_q4_0_exact(const float* x, int64_t n, DType storage, uint8_t* blocks) {
  const int64_t n_blocks = n / kQ4_0BlockElems;
  int64_t replaced = 0;
#pragma omp parallel for schedule(static) reduction(+ : replaced) if (n_blocks > 4096)
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t block[kQ4_0BlockBytes];
    if (!fit_q4_0_block(x + b * kQ4_0BlockElems, storage, block)) continue;
    std::memcpy(blocks + b * kQ4_0BlockBytes, block, kQ4_0BlockBytes);
    ++replaced;
  }
  return replaced;
}

DType storage_dtype(const TensorSource& src, const GgufTensorPlan& plan) {
  if (plan.parts.empty()) return DType::kF32;
  const TensorInfo* t = src.find(plan.parts[0]);
  return t ? t->dtype : DType::kF32;
}

QatDetection detect_q4_0_lattice(const TensorSource& src, const std::vector<GgufTensorPlan>& plans,
                                 ScratchBuffer<float>& rows) {
  QatDetection det;
  det.checked = true;
  det.tensors.resize(plans.size());
  constexpr int64_t kSlabFloats = int64_t(16) << 20;
  for (size_t i = 0; i < plans.size(); ++i) {
    const GgufTensorPlan& p = plans[i];
    if (p.ne.empty() || p.ne[0] % kQ4_0BlockElems != 0 || p.parts.empty() ||
        !tensor_allows_quantization(p.name, int(p.ne.size()), true))
      continue;
    const DType storage = storage_dtype(src, p);
    LatticeStats& s = det.tensors[i];
    for_each_slab(src, p, std::max<int64_t>(1, kSlabFloats / p.ne[0]), [&](const float* x, int64_t, int64_t n, int) {
      measure_q4_0_lattice(x, n * p.ne[0], storage, s);
    }, rows);
    ++det.n_measured;
    if (!s.detected()) continue;
    ++det.n_detected;
    det.total.blocks += s.blocks;
    det.total.zero += s.zero;
    det.total.on_lattice += s.on_lattice;
  }
  return det;
}

std::string apply_qat_recipe(const QatDetection& det, FileType ftype, const std::vector<GgufTensorPlan>& plans,
                             std::vector<TypeChoice>& choices) {
  // A tensor partly on the lattice is worth a look (edited after training?); say so.
  for (size_t i = 0; i < plans.size(); ++i) {
    const LatticeStats& s = det.tensors[i];
    if (s.on_lattice > 0 && !s.detected())
      choices[i].note += (choices[i].note.empty() ? "" : "; ") + percent(s.fraction()) + " of blocks on a Q4_0 lattice";
  }
  if (!det.is_qat()) return "";
  std::map<std::string, int> elsewhere;  // detected tensors on another block grid, by type
  int n_elsewhere = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    TypeChoice& ch = choices[i];
    const LatticeStats& s = det.tensors[i];
    const bool user_chose = ch.pinned;
    const bool embedding = plans[i].name == "token_embd.weight" || plans[i].name == "output.weight";
    if (ftype == FileType::kQ4_0 && s.detected() && !user_chose) {
      ch.type = DType::kQ4_0;
      ch.quantized = plans[i].base_type != DType::kQ4_0;
      ch.fallback = false;
      ch.note = "Q4_0 lattice (" + percent(s.fraction()) + " of blocks): exact";
      ch.pinned = true;
    } else if (ftype == FileType::kQ4_0 && embedding && !s.detected() && !user_chose && ch.type == DType::kQ4_0) {
      ch.type = plans[i].ne[0] % 256 == 0 ? DType::kQ6_K : DType::kQ8_0;
      ch.note = "QAT recipe: embeddings off the lattice keep llama.cpp's output type";
      ch.pinned = true;
    }
    if (s.detected() && ch.type != DType::kQ4_0 && dtype_traits(ch.type).block_elems > 1) {
      ++elsewhere[std::string(dtype_name(ch.type))];
      ++n_elsewhere;
    }
  }
  if (n_elsewhere == 0) return "";
  std::string types;
  for (const auto& [name, n] : elsewhere) types += cat(types.empty() ? "" : ", ", n, " ", name);
  return cat(n_elsewhere, " of ", det.n_detected, " tensors lie on a Q4_0 lattice (the checkpoint was trained for "
             "Q4_0) but are written as ", types, ": that re-rounds them onto another grid instead of keeping the "
             "values they were trained to; -t Q4_0 reproduces them exactly");
}

}  // namespace temper
