// Code layouts of ggml's blocks (ggml-quants.c dequantize_row_*): only the bits that hold the
// elements' integer codes are written here; scales are ggml's quantizer's.
#include "quantize/block_codes.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "quant/quant.h"
#include "quant/quant_common.h"

namespace temper::quant {
namespace {

void set_nibble(uint8_t& byte, bool high, uint8_t v) {
  byte = high ? uint8_t((byte & 0x0F) | (v << 4)) : uint8_t((byte & 0xF0) | (v & 0x0F));
}
void set_bit(uint8_t* bytes, int bit, bool v) {
  const uint8_t m = uint8_t(1u << (bit % 8));
  bytes[bit / 8] = v ? uint8_t(bytes[bit / 8] | m) : uint8_t(bytes[bit / 8] & ~m);
}
// Elements j < 16 in the low nibbles of qs[j], 16..31 in the high nibbles of qs[j-16].
void set_32_nibbles(uint8_t* qs, const uint8_t* c) {
  for (int j = 0; j < 16; ++j) {
    set_nibble(qs[j], false, c[j]);
    set_nibble(qs[j], true, c[j + 16]);
  }
}

}  // namespace

bool has_block_codes(DType t) {
  switch (t) {
    case DType::kQ4_0: case DType::kQ4_1: case DType::kQ5_0: case DType::kQ5_1: case DType::kQ8_0:
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
    case DType::kIQ4_NL: case DType::kIQ4_XS:
      return true;
    default:
      return false;
  }
}

int block_code_count(DType t) {
  switch (t) {
    case DType::kQ2_K: return 4;
    case DType::kQ3_K: return 8;
    case DType::kQ4_0: case DType::kQ4_1: case DType::kQ4_K: case DType::kIQ4_NL: case DType::kIQ4_XS: return 16;
    case DType::kQ5_0: case DType::kQ5_1: case DType::kQ5_K: return 32;
    case DType::kQ6_K: return 64;
    case DType::kQ8_0: return 256;
    default: fail("calibrated quantization cannot round to ", dtype_name(t));
  }
}

float block_code_grid(DType t, int code) {
  return t == DType::kIQ4_NL || t == DType::kIQ4_XS ? float(kIQ4Values[code]) : float(code);
}

void set_block_codes(DType t, uint8_t* block, std::span<const uint8_t> c) {
  switch (t) {
    case DType::kQ4_0: set_32_nibbles(reinterpret_cast<BlockQ4_0*>(block)->qs, c.data()); return;
    case DType::kQ4_1: set_32_nibbles(reinterpret_cast<BlockQ4_1*>(block)->qs, c.data()); return;
    case DType::kIQ4_NL: set_32_nibbles(reinterpret_cast<BlockIQ4_NL*>(block)->qs, c.data()); return;
    case DType::kQ5_0: case DType::kQ5_1: {
      uint8_t* qh = t == DType::kQ5_0 ? reinterpret_cast<BlockQ5_0*>(block)->qh : reinterpret_cast<BlockQ5_1*>(block)->qh;
      uint8_t* qs = t == DType::kQ5_0 ? reinterpret_cast<BlockQ5_0*>(block)->qs : reinterpret_cast<BlockQ5_1*>(block)->qs;
      uint8_t low[32];
      for (int j = 0; j < 32; ++j) {
        low[j] = c[j] & 0x0F;
        set_bit(qh, j, c[j] & 0x10);  // qh is a little-endian u32: bit j is element j's fifth bit
      }
      set_32_nibbles(qs, low);
      return;
    }
    case DType::kQ8_0: {
      auto* b = reinterpret_cast<BlockQ8_0*>(block);
      for (int j = 0; j < 32; ++j) b->qs[j] = int8_t(int(c[j]) - 128);
      return;
    }
    case DType::kQ2_K: {  // element n*128 + j*32 + l: bits 2j of qs[n*32 + l]
      auto* b = reinterpret_cast<BlockQ2_K*>(block);
      for (int n = 0; n < 2; ++n)
        for (int j = 0; j < 4; ++j)
          for (int l = 0; l < 32; ++l) {
            uint8_t& q = b->qs[n * 32 + l];
            q = uint8_t((q & ~(3 << (2 * j))) | ((c[n * 128 + j * 32 + l] & 3) << (2 * j)));
          }
      return;
    }
    case DType::kQ3_K: {  // low 2 bits as Q2_K; hmask[l] bit n*4+j set means "no -4"
      auto* b = reinterpret_cast<BlockQ3_K*>(block);
      for (int n = 0; n < 2; ++n)
        for (int j = 0; j < 4; ++j)
          for (int l = 0; l < 32; ++l) {
            const uint8_t v = c[n * 128 + j * 32 + l];
            uint8_t& q = b->qs[n * 32 + l];
            q = uint8_t((q & ~(3 << (2 * j))) | ((v & 3) << (2 * j)));
            set_bit(&b->hmask[l], n * 4 + j, v & 4);
          }
      return;
    }
    case DType::kQ4_K: {  // element c*64 + l: low nibble of qs[c*32 + l]; + 32: the high nibble
      auto* b = reinterpret_cast<BlockQ4_K*>(block);
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) {
          set_nibble(b->qs[k * 32 + l], false, c[k * 64 + l]);
          set_nibble(b->qs[k * 32 + l], true, c[k * 64 + 32 + l]);
        }
      return;
    }
    case DType::kQ5_K: {  // as Q4_K, fifth bits in qh[l] bits 2k (low half) and 2k+1 (high half)
      auto* b = reinterpret_cast<BlockQ5_K*>(block);
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) {
          const uint8_t lo = c[k * 64 + l], hi = c[k * 64 + 32 + l];
          set_nibble(b->qs[k * 32 + l], false, lo & 0x0F);
          set_nibble(b->qs[k * 32 + l], true, hi & 0x0F);
          set_bit(&b->qh[l], 2 * k, lo & 0x10);
          set_bit(&b->qh[l], 2 * k + 1, hi & 0x10);
        }
      return;
    }
    case DType::kQ6_K: {  // per half n: ql[64], qh[32]; elements l, l+32, l+64, l+96
      auto* b = reinterpret_cast<BlockQ6_K*>(block);
      for (int n = 0; n < 2; ++n) {
        uint8_t* ql = b->ql + n * 64;
        uint8_t* qh = b->qh + n * 32;
        const uint8_t* e = c.data() + n * 128;
        for (int l = 0; l < 32; ++l) {
          ql[l] = uint8_t((e[l] & 0x0F) | ((e[l + 64] & 0x0F) << 4));
          ql[l + 32] = uint8_t((e[l + 32] & 0x0F) | ((e[l + 96] & 0x0F) << 4));
          qh[l] = uint8_t((e[l] >> 4) | ((e[l + 32] >> 4) << 2) | ((e[l + 64] >> 4) << 4) | ((e[l + 96] >> 4) << 6));
        }
      }
      return;
    }
    case DType::kIQ4_XS: {  // per sub-block of 32: qs[ib*16 + j] low = element ib*32+j, high = +16
      auto* b = reinterpret_cast<BlockIQ4_XS*>(block);
      for (int ib = 0; ib < 8; ++ib) set_32_nibbles(b->qs + ib * 16, c.data() + ib * 32);
      return;
    }
    default:
      fail("calibrated quantization cannot round to ", dtype_name(t));
  }
}

void block_grid(DType t, uint8_t* block, float* a, float* b) {
  const int n = dtype_traits(t).block_elems;
  std::vector<uint8_t> codes(size_t(n), 0);
  std::vector<float> v0(static_cast<size_t>(n)), v1(static_cast<size_t>(n));
  set_block_codes(t, block, codes);
  dequantize_row(t, block, v0.data(), n);
  std::fill(codes.begin(), codes.end(), uint8_t(1));
  set_block_codes(t, block, codes);
  dequantize_row(t, block, v1.data(), n);
  const float g0 = block_code_grid(t, 0), g1 = block_code_grid(t, 1);
  for (int i = 0; i < n; ++i) {
    a[i] = (v1[i] - v0[i]) / (g1 - g0);
    b[i] = v0[i] - a[i] * g0;
  }
}

}  // namespace temper::quant
