// bf16 products through oneDNN (see gemm_bf16.h). The only file that includes dnnl.hpp.
// Debian's libdnnl is built with the OpenMP runtime and links the same libgomp as temper, so
// its kernels run on our one OpenMP pool, at omp_get_max_threads() (--threads); every call
// here is made outside any parallel region.
#include "train/gemm_bf16.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdlib>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/half.h"
#include "quant/quant.h"

namespace temper::train {

namespace {

using dnnl::memory;

// bf16 elements of one dequantised weight tile: 4 MiB, as forward::for_each_f32_tile's f32
// tile, so the scratch stays bounded whatever the model size.
constexpr int64_t kTileElems = int64_t{1} << 21;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One matmul shape: dims (M, K, N), strides of src (M, K), weights (K, N), dst (M, N), and
// whether the product is added to dst (a sum post-op) or overwrites it.
using Shape = std::array<int64_t, 10>;

// dst (M, N) f32 (+)= src (M, K) bf16 · wei (K, N) bf16, each operand with the given strides.
// Primitives are created once per shape (JIT compilation costs milliseconds) and reused.
void run_matmul(const Shape& k, const uint16_t* src, const uint16_t* wei, float* dst) {
  static std::mutex mu;
  static std::map<Shape, std::pair<dnnl::matmul, dnnl::matmul::primitive_desc>> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(k);
  if (it == cache.end()) {
    const memory::desc src_md({k[0], k[1]}, memory::data_type::bf16, {k[3], k[4]});
    const memory::desc wei_md({k[1], k[2]}, memory::data_type::bf16, {k[5], k[6]});
    const memory::desc dst_md({k[0], k[2]}, memory::data_type::f32, {k[7], k[8]});
    dnnl::primitive_attr attr;
    if (k[9]) {
      dnnl::post_ops po;
      po.append_sum(1.0f);
      attr.set_post_ops(po);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_md, dst_md), attr, engine());
    it = cache.emplace(k, std::make_pair(dnnl::matmul(pd), pd)).first;
  }
  const auto& [prim, pd] = it->second;
  dnnl::stream stream(engine());
  prim.execute(stream, {{DNNL_ARG_SRC, memory(pd.src_desc(), engine(), const_cast<uint16_t*>(src))},
                        {DNNL_ARG_WEIGHTS, memory(pd.weights_desc(), engine(), const_cast<uint16_t*>(wei))},
                        {DNNL_ARG_DST, memory(pd.dst_desc(), engine(), dst)}});
  stream.wait();
}

// bf16 weights whose rows are 2-byte aligned are used in place; the row stride in elements.
bool usable_in_place(const forward::Matrix& w) {
  return w.dtype == DType::kBF16 && reinterpret_cast<uintptr_t>(w.data) % 2 == 0 &&
         w.row_bytes % 2 == 0;
}

// Rows [r0, r0+nr) of W as bf16 (nr, K) into `out` (OpenMP over rows). Floating-point types
// round their f32 value; block types dequantise one row to f32 first (quant::dequantize_row is
// exact for them), then round.
void tile_to_bf16(uint16_t* out, const forward::Matrix& w, int64_t r0, int64_t nr) {
  const int64_t K = w.cols;
#pragma omp parallel if (nr * K >= (1 << 15))
  {
    std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < nr; ++r) {
      if (w.dtype == DType::kBF16) {
        std::copy_n(reinterpret_cast<const uint16_t*>(w.row(r0 + r)), K, out + r * K);
        continue;
      }
      quant::dequantize_row(w.dtype, w.row(r0 + r), row.data(), K);
      for (int64_t i = 0; i < K; ++i) out[r * K + i] = f32_to_bf16(row[size_t(i)]);
    }
  }
}

// Calls fn(r0, nr, tile, ld) over W's rows as bf16 (nr, K) tiles with row stride ld: the whole
// of W in place when it is bf16, else consecutive tiles dequantised into s.tile.
template <typename Fn>
void for_each_bf16_tile(const forward::Matrix& w, Bf16Scratch& s, Fn&& fn) {
  const int64_t K = w.cols, N = w.rows;
  if (usable_in_place(w)) {
    fn(int64_t{0}, N, reinterpret_cast<const uint16_t*>(w.data), int64_t(w.row_bytes / 2));
    return;
  }
  const int64_t tile_rows = std::clamp<int64_t>(kTileElems / std::max<int64_t>(K, 1), 1, N);
  s.tile.resize(size_t(tile_rows * K));
  for (int64_t r0 = 0; r0 < N; r0 += tile_rows) {
    const int64_t nr = std::min(tile_rows, N - r0);
    tile_to_bf16(s.tile.data(), w, r0, nr);
    fn(r0, nr, static_cast<const uint16_t*>(s.tile.data()), K);
  }
}

// bf16 of x (n rows of `cols`, rows ld apart) into s.act as (n, cols) contiguous.
const uint16_t* activations_to_bf16(const float* x, int64_t n, int64_t cols, int64_t ld,
                                    Bf16Scratch& s) {
  s.act.resize(size_t(n * cols));
  if (ld == cols) {
    round_to_bf16(s.act.data(), x, n * cols);
  } else {
    for (int64_t t = 0; t < n; ++t) round_to_bf16(s.act.data() + t * cols, x + t * ld, cols);
  }
  return s.act.data();
}

}  // namespace

std::string_view precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "f32"; }

bool bf16_native() {
  if (const char* e = std::getenv("TEMPER_NO_BF16"); e && std::string_view(e) != "0") return false;
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  // ISA values are feature bit masks (dnnl_types.h): AMX includes the AVX-512-BF16 bits.
  const unsigned bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

std::string gemm_bf16_describe() {
  const dnnl_version_t* v = dnnl_version();
  const auto isa = dnnl::get_effective_cpu_isa();
  const char* name = isa == dnnl::cpu_isa::avx512_core_amx    ? "avx512_core_amx"
                     : isa == dnnl::cpu_isa::avx512_core_bf16 ? "avx512_core_bf16"
                     : isa == dnnl::cpu_isa::avx512_core_vnni ? "avx512_core_vnni"
                     : isa == dnnl::cpu_isa::avx512_core      ? "avx512_core"
                     : isa == dnnl::cpu_isa::avx2_vnni        ? "avx2_vnni"
                     : isa == dnnl::cpu_isa::avx2             ? "avx2"
                                                              : "other";
  return cat("oneDNN ", v->major, ".", v->minor, ".", v->patch, ", ", name);
}

void round_to_bf16(uint16_t* out, const float* in, int64_t count) {
  // Branch-free so the loop vectorises: NaN keeps a quiet-NaN pattern, everything else rounds
  // to nearest even exactly as core/half.h's f32_to_bf16 (checked in gemm_bf16_test).
#pragma omp parallel for schedule(static) if (count >= (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t u = std::bit_cast<uint32_t>(in[i]);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x40u;
    out[i] = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}

void matmul_forward_bf16(float* y, const float* x, const forward::Matrix& w, int64_t n,
                         int64_t ldy, Bf16Scratch& s) {
  const int64_t K = w.cols;
  if (n == 0 || w.rows == 0) return;
  TEMPER_CHECK(ldy >= w.rows, "matmul_forward_bf16: ldy ", ldy, " < N ", w.rows);
  const uint16_t* x16 = activations_to_bf16(x, n, K, K, s);
  for_each_bf16_tile(w, s, [&](int64_t r0, int64_t nr, const uint16_t* tile, int64_t ld) {
    // y[:, r0:r0+nr] = x16 · tileᵀ: the weights operand (K, nr) is the tile read transposed.
    run_matmul({n, K, nr, K, 1, 1, ld, ldy, 1, 0}, x16, tile, y + r0);
  });
}

void matmul_backward_bf16(float* dx, const float* dy, int64_t ldy, const forward::Matrix& w,
                          int64_t n, bool accumulate, Bf16Scratch& s) {
  const int64_t K = w.cols, N = w.rows;
  if (n == 0) return;
  if (N == 0) {
    if (!accumulate) std::fill(dx, dx + n * K, 0.0f);
    return;
  }
  const uint16_t* dy16 = activations_to_bf16(dy, n, N, ldy, s);
  bool first = true;
  for_each_bf16_tile(w, s, [&](int64_t r0, int64_t nr, const uint16_t* tile, int64_t ld) {
    // dx (+)= dy16[:, r0:r0+nr] · tile
    run_matmul({n, nr, K, N, 1, ld, 1, K, 1, (accumulate || !first) ? 1 : 0}, dy16 + r0, tile,
               dx);
    first = false;
  });
}

}  // namespace temper::train
