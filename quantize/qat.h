// Checkpoints trained for Q4_0 (quantization-aware training, e.g. Google's Gemma 3 "qat-q4_0"
// releases): their weights already lie, block by block, on a Q4_0 lattice d·q (d one fp16 per 32
// weights, q an integer in [-8, 7]). temper measures that per tensor and writes such tensors as
// Q4_0 blocks that decode to exactly the trained values, instead of re-rounding them with ggml's
// search (which picks d from the largest weight and misses the lattice whenever a block's
// extreme is +7d rather than -8d).
//
// Metadata: no HF config field marks such checkpoints (Google's carry no quantization_config;
// llama.cpp's converter reads quantization_config only for fp8/mxfp4/compressed-tensors
// formats), so detection is by measurement only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/scratch.h"
#include "quantize/gguf_plan.h"
#include "quantize/policy.h"

namespace temper {

inline constexpr int kQ4_0BlockElems = 32;
inline constexpr size_t kQ4_0BlockBytes = 18;  // fp16 d + 16 bytes of nibbles

// Finds d (an fp16 value) and q_i in [-8, 7] such that storing d·q_i in the checkpoint's dtype
// gives back x_i for all 32 elements, and writes that ggml Q4_0 block (byte j: element j in
// the low nibble, j+16 in the high one, value (nibble-8)·d) to `block`. False when the block
// is off the lattice. `storage` is the dtype x was decoded from (F32 and block types: exact).
bool fit_q4_0_block(const float* x, DType storage, uint8_t* block);

struct LatticeStats {
  int64_t blocks = 0;      // all 32-blocks measured
  int64_t zero = 0;        // all-zero blocks: on every lattice, so they prove nothing
  int64_t on_lattice = 0;  // non-zero blocks that fit
  double fraction() const { return blocks > zero ? double(on_lattice) / double(blocks - zero) : 0.0; }
  // A normal checkpoint puts essentially no block on a lattice (see qat.cpp), a QAT one all
  // of them; 90% tolerates a few blocks edited after training.
  bool detected() const { return blocks > zero && fraction() >= 0.9; }
};

// Adds n values (a whole number of blocks) to `stats`.
void measure_q4_0_lattice(const float* x, int64_t n, DType storage, LatticeStats& stats);

// `blocks` holds ggml's Q4_0 encoding of x (n values); every block on the lattice is replaced by
// its exact encoding. Returns how many blocks were replaced.
int64_t make_q4_0_exact(const float* x, int64_t n, DType storage, uint8_t* blocks);

struct QatDetection {
  bool checked = false;
  std::vector<LatticeStats> tensors;  // parallel to the plans; blocks == 0: not measured
  int n_measured = 0, n_detected = 0;
  LatticeStats total;                 // over the detected tensors
  bool is_qat() const { return n_detected > 0; }
};

// The dtype a planned tensor is decoded from (F32 for generated tensors).
DType storage_dtype(const TensorSource& src, const GgufTensorPlan& plan);

// "99.8%"
std::string percent(double fraction);

// Measures every tensor llama-quantize may quantize whose rows are whole Q4_0 blocks.
// Reads all of their weights once.
QatDetection detect_q4_0_lattice(const TensorSource& src, const std::vector<GgufTensorPlan>& plans,
                                 ScratchBuffer<float>& rows);

// The QAT recipe, applied to llama.cpp's choices for file type `ftype` (after choose_tensor_types):
// - at Q4_0, every detected tensor is Q4_0 (written exactly; llama.cpp's mix would make some
//   ffn_down Q4_1 with an imatrix, Google's QAT files use Q4_0 throughout), unless the user
//   chose its type (--tensor-type, --output-tensor-type, --token-embedding-type);
// - the embedding table and output, when not on the lattice themselves, get llama.cpp's output
//   rule (Q6_K, or Q8_0 for rows that fit no 256-block) also when untied, where plain Q4_0 would
//   make the untied table Q4_0. Google's own QAT GGUFs kept the table in f16; llama.cpp's Q6_K
//   measured the same perplexity at a quarter of the size (stduhpf's requantized
//   google-gemma-3-*-it-qat-q4_0-gguf-small: Gemma-3-4B 14.594 vs 14.580, within error).
// Returns one warning, or "", when detected tensors end up on another block type's grid.
std::string apply_qat_recipe(const QatDetection& det, FileType ftype, const std::vector<GgufTensorPlan>& plans,
                             std::vector<TypeChoice>& choices);

}  // namespace temper
