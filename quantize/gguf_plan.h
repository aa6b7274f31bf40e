// Which tensors a GGUF of a model holds, under llama.cpp's names and shapes, and how each is
// made from the checkpoint: the transforms llama.cpp's converter applies (Llama q/k row
// permutation, Gemma 1-3 norm + 1, per-expert tensors stacked, generated rope_freqs).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/scratch.h"
#include "formats/gguf.h"
#include "model/arch.h"
#include "model/open_model.h"

namespace temper {

struct GgufTensorPlan {
  std::string name;                    // GGUF name, e.g. "blk.3.attn_q.weight"
  std::vector<int64_t> ne;             // ggml order (ne[0] = row length)
  DType base_type;                     // type in llama.cpp's unquantized conversion (see below)
  GgufTransform transform = GgufTransform::kNone;
  QuantClass quant_class = QuantClass::kOther;  // from the arch's tensor table (TensorSpec)
  int permute_heads = 0;               // heads for kPermuteRopeQ/K
  std::vector<std::string> parts;      // source tensor names; several = experts stacked (ne[2])
  std::vector<float> generated;        // values of a generated tensor (parts empty)
  int64_t n_rows() const;              // ne[1] * ne[2] * ne[3]
};

// The plan in llama.cpp's loader order (layer, then name). base_type follows
// convert_hf_to_gguf's dtype rule: F32 for 1-D tensors, *_norm.weight, the MoE router and
// names not ending in ".weight"; the checkpoint's own dtype otherwise. Throws Error naming a
// tensor the model lacks.
std::vector<GgufTensorPlan> plan_gguf_tensors(const OpenedModel& model);

// Plans for a GGUF input (requantizing): its tensors as they are, base_type = stored type,
// quant_class from the tensor table of the architecture that reads general.architecture.
// Throws Error when temper has no such architecture.
std::vector<GgufTensorPlan> plan_from_gguf(const GgufFile& gguf);

// Streams a planned tensor as f32 rows in slabs of at most `max_rows` rows (whole heads for
// permuted tensors; never across experts), transformed as planned:
// fn(rows (n x ne[0]), first_row, n, expert). Decodes f16/bf16 and block types.
using SlabFn = std::function<void(const float* rows, int64_t first_row, int64_t n_rows, int expert)>;
// `rows` holds the slab; pass the same buffer for every tensor of a model.
void for_each_slab(const TensorSource& src, const GgufTensorPlan& plan, int64_t max_rows, const SlabFn& fn,
                   ScratchBuffer<float>& rows);

// The whole tensor as f32 (tests and small tensors).
std::vector<float> load_planned_tensor_f32(const TensorSource& src, const GgufTensorPlan& plan);

}  // namespace temper
