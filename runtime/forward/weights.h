// The model's tensors bound by role: matrices stay in their stored type as views into the
// source's mapping (or into bytes read once for sources without one); 1-D tensors (norm
// weights, scales) are small and converted to f32 at load.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "formats/tensor_source.h"
#include "model/model_desc.h"

namespace temper::forward {

// A row-major (rows, cols) matrix in its stored type (f32, f16, bf16 or a ggml block type,
// rows a whole number of blocks). Not owning.
struct Matrix {
  const uint8_t* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  size_t row_bytes = 0;
  explicit operator bool() const { return data != nullptr; }
  const uint8_t* row(int64_t r) const { return data + size_t(r) * row_bytes; }
  Matrix slice_rows(int64_t first, int64_t n) const {
    Matrix m = *this;
    m.data = row(first);
    m.rows = n;
    return m;
  }
};

using Vector = std::vector<float>;  // empty = absent

struct ExpertWeights {
  Matrix gate, up, down;  // split layout (one tensor per projection)
  Matrix gate_up;         // fused layout: rows [0, I) gate, [I, 2I) up
};

struct LayerWeights {
  Vector attn_norm, q_norm, k_norm, post_attn_norm;
  Matrix wq, wk, wv, wo;
  Vector ffn_norm, post_ffn_norm;
  Matrix ffn_gate, ffn_up, ffn_down;
  // Experts and their router.
  Matrix router;        // (E, d_model)
  Vector router_scale;  // (d_model): router input scale
  Vector expert_scale;  // (E): per-expert output scale
  Vector pre_ffn_norm_2, post_ffn_norm_1, post_ffn_norm_2;
  std::vector<ExpertWeights> experts;
  // Per-layer embeddings (ple_dim > 0).
  Matrix ple_gate, ple_proj;  // (P, d_model), (d_model, P)
  Vector ple_post_norm;
  float layer_scalar = 1;
};

// Which tensor a bound matrix is, under the GGUF name llama.cpp and `temper quantize` give it
// (for experts: the stacked ffn_*_exps tensor and the expert's index in it).
struct MatrixName {
  std::string gguf_name;
  int layer = -1, expert = -1, n_expert = 0;
};

struct Weights {
  Matrix token_embd, output;  // output == token_embd when tied
  Vector output_norm;
  Matrix ple_token_embd, ple_model_proj;  // (V_ple, L*P), (L*P, d_model)
  Vector ple_proj_norm;
  std::vector<LayerWeights> layers;
  // Stored bytes of tensors whose source read them into scratch (HDF5); one copy each.
  std::vector<std::vector<uint8_t>> owned;
  // Every bound matrix by its first byte (a tied output shares the embedding's entry).
  std::map<const uint8_t*, MatrixName> names;
};

// The name of a matrix bound in `w` (one of its fields, or an expert's), nullptr for any other.
const MatrixName* find_matrix(const Weights& w, const Matrix& m);

// How checkpoint names map to the arch's tensor table.
enum class NameScheme : uint8_t {
  kHf,    // canonical HF names after arch.canonical_name; one tensor per expert, or a fused
          // (E, rows, cols) tensor sliced per expert
  kGguf,  // gguf_name; per-expert tensors stacked as (E, rows, cols) under one name
};

// Binds every tensor expected_tensors(arch, cfg) lists. Throws Error naming the tensor for a
// missing required tensor, a shape that differs from the table, or an unsupported dtype.
// The source must outlive the returned views.
Weights bind_weights(const TensorSource& src, const ModelDescription& desc, NameScheme scheme);

}  // namespace temper::forward
