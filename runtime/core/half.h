// IEEE binary16 and bfloat16 <-> binary32 conversions, bit-exact and portable.
// fp32 -> fp16/bf16 rounds to nearest, ties to even, as the F16C instruction and
// PyTorch do; NaN stays NaN (quiet), infinities and subnormals are kept.
#pragma once
#include <bit>
#include <cstdint>

namespace temper {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf/nan
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return std::bit_cast<float>(sign);
  // Subnormal: value = man * 2^-24, exact in fp32.
  float v = float(man) * 0x1p-24f;
  return sign ? -v : v;
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((au >> 13) & 0x3ffu));  // NaN
  if (au >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (au < 0x38800000u) {
    // Result is subnormal or zero: round au * 2^24 (as integer of unit 2^-24) to nearest even.
    if (au < 0x33000000u) return sign;  // < 2^-25: rounds to zero
    const uint32_t exp = au >> 23;
    const uint32_t man = (au & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp;  // 14..24 (value = man * 2^(exp-150), unit 2^-24)
    uint32_t q = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
    return uint16_t(sign | q);
  }
  uint32_t r = au + 0x0fffu + ((au >> 13) & 1u);  // round mantissa to 10 bits, ties to even
  return uint16_t(sign | (((r >> 13) - (112u << 10)) & 0xffffu));
}

}  // namespace temper
