// The pieces `quantize --calibrate` (calibrate.cpp) and `quantize --target-bpw` (sensitivity.cpp)
// share: calibration text -> chunks of token ids, the chunks' embeddings, and one dense decoder
// block run on a chunk as the runtime decoder (runtime/forward/decoder.cpp) runs it, with the
// block's matrices swappable for quantized versions.
//
// Glossary: T = tokens per chunk, H = d_model, K = a matrix's input width, C = chunks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "forward/forward.h"
#include "forward/kernels.h"
#include "forward/weights.h"
#include "model/open_model.h"
#include "tokenizer/tokenizer.h"

namespace temper::calib {

// Where a block run stops: at the input of one of the four matrix groups, or after the block.
enum class Stage : int { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3, kOut = 4 };
constexpr int kGroups = 4;

// Refuses (Error naming `flag` and what to use instead) architectures with blocks run_block does
// not run: per-layer embeddings, experts, KV-shared layers.
void check_dense_blocks(const ModelConfig& cfg, const std::string& input, const std::string& flag);

// The calibration text as chunks of `ctx` token ids, each starting with BOS as imatrix's do.
struct Chunks {
  int ctx = 0;
  int64_t available = 0;                 // tokens in the data
  std::vector<std::vector<int32_t>> ids;  // (C, T)
  int64_t tokens() const { return int64_t(ids.size()) * ctx; }
};
// `path`: text, or chat JSONL rendered with the model's template. `want_tokens` is rounded up to
// whole chunks; seed 0 takes the first chunks, others a fixed shuffle. Throws Error (naming
// `flag`) for a missing file, chat data that renders to nothing, or data shorter than one chunk
// (saying how many tokens are missing).
Chunks load_chunks(const OpenedModel& om, const Tokenizer& tok, const std::string& path, int ctx, int64_t want_tokens,
                   uint64_t seed, const std::string& flag);

// The chunks' hidden states entering block 0: rows of `embd` (e.g. the quantized embedding)
// times the model's embed_scale. (C, T*H)
std::vector<std::vector<float>> embed_chunks(const Chunks& chunks, const forward::Matrix& embd,
                                             const forward::Model& model);

struct BlockBuffers {
  std::vector<float> h, q, k, v, attn, a, gate, up, m, x2, scratch;
  std::vector<int32_t> pos;
};

// One dense decoder block on one chunk x (T, H). Returns the input of `stop`'s matrix group
// (x unchanged), or runs the whole block and updates x in place (Stage::kOut).
const float* run_block(float* x, int64_t T, const forward::LayerWeights& W, const LayerConfig& L,
                       const ModelConfig& cfg, const forward::RopeParams& rope, Stage stop, BlockBuffers& s);

// Final norm and output head on x (T, H): logits (T, n_vocab), soft-capped where the model is.
void run_head(std::vector<float>& logits, const float* x, int64_t T, const forward::Vector& output_norm,
              const forward::Matrix& output, const ModelConfig& cfg, BlockBuffers& s);

// The matrices of group g of a block (the field pointers, so they can be swapped for their
// quantized versions).
std::vector<forward::Matrix*> group_matrices(forward::LayerWeights& W, Stage g);

// The tensors of a group's matrices (from group_matrices): a fused tensor (Phi-3's attn_qkv,
// gate+up stored as ffn_up) is bound as consecutive row views named by the first, so one tensor
// spans n_slots matrices from `index`. Matrices that are absent or name no tensor are skipped.
struct GroupTensor {
  int index = 0, n_slots = 1;
  std::string name;  // GGUF name
};
std::vector<GroupTensor> group_tensors(const forward::Weights& w, const std::vector<forward::Matrix*>& mats);
// The whole tensor as one matrix (its row views joined).
forward::Matrix joined(const std::vector<forward::Matrix*>& mats, const GroupTensor& g);
// Points the tensor's row views at the rows of `whole` (e.g. its quantized version).
void split_into(const std::vector<forward::Matrix*>& mats, const GroupTensor& g, const forward::Matrix& whole);

// A matrix decoded to f32 (rows, cols).
std::vector<float> matrix_f32(const forward::Matrix& m);

}  // namespace temper::calib
