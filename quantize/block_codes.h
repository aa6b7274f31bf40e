// The integer codes of a ggml block, apart from its scales: which types the calibrated quantizer
// can round itself, how many codes each element has, and how to write an element's code into a
// block whose scales (d, dmin, sub-block scales) are already set. The value an element decodes to
// is then a·grid(code) + b, with a and b fixed by the scales (grid = identity for the uniform
// types, ggml's kvalues_iq4nl for IQ4_NL/IQ4_XS); block_grid reads a and b off ggml's own
// decoder, so no scale layout is written twice.
#pragma once
#include <cstdint>
#include <span>

#include "core/dtype.h"

namespace temper::quant {

// True for the types set_block_codes handles: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K,
// IQ4_NL, IQ4_XS.
bool has_block_codes(DType t);

// Codes per element: 2^bits (Q8_0: 256, as int8 + 128).
int block_code_count(DType t);

// grid(code) for the type: the code itself, or kvalues_iq4nl[code] for the IQ4 types.
float block_code_grid(DType t, int code);

// Writes codes[i] (one per element, 0 <= code < block_code_count) into one block, keeping its
// scales.
void set_block_codes(DType t, uint8_t* block, std::span<const uint8_t> codes);

// For one block with its scales set: per element the a, b with value(code) = a·grid(code) + b,
// from ggml's decoder at codes 0 and 1 (the block's codes are left at 1).
void block_grid(DType t, uint8_t* block, float* a, float* b);

}  // namespace temper::quant
