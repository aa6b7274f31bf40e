// Adapters on the row blocks of a fused projection (Phi-3's qkv_proj: q, k, v; gate_up_proj:
// gate, up), which temper adapts as separate projections, written as the one LoRA pair on the
// fused tensor that PEFT and llama.cpp's GGUF LoRA hold. Shared by the PEFT and GGUF exports.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "forward/lora_apply.h"

namespace temper {

// One pair on a fused tensor. rank = n·r with n = blocks (1 when the blocks share one A).
struct FusedLoraPair {
  int64_t in = 0, out = 0, rank = 0;
  int64_t n_stacked = 1;   // how many A's are stacked: the scale PEFT/llama.cpp derive from rank is n times smaller
  std::vector<float> a, b;  // (rank, in), (out, rank)
};

// The adapted blocks of one fused tensor (`blocks`: its targets, any order, all of adapter rank
// `rank`) as one pair. Blocks that share one A (as `lora import` of a fused PEFT module leaves
// them) give rank r: that A, and B the blocks' rows. Otherwise the A's are stacked in row
// order (rank n·r) and B is block-diagonal, each block's rows reading its own r columns, so
// B·A x holds each block's B_i A_i x in its rows, exactly. Rows of blocks without an adapter
// are zero.
FusedLoraPair fuse_lora_blocks(std::vector<const forward::LoraTarget*> blocks, int64_t rank);

// `targets` (from match_lora_to_base) that sit on fused tensors, grouped by that tensor's HF
// name.
std::map<std::string, std::vector<const forward::LoraTarget*>> group_fused_targets(
    const std::vector<forward::LoraTarget>& targets);

}  // namespace temper
