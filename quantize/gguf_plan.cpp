#include "gguf_plan.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "core/error.h"
#include "core/escape.h"
#include "core/half.h"
#include "model/arch/common.h"
#include "quant/quant.h"
#include "quantize/policy.h"

namespace temper {

int64_t GgufTensorPlan::n_rows() const {
  int64_t n = 1;
  for (size_t i = 1; i < ne.size(); ++i) n *= ne[i];
  return n;
}

namespace {

// convert_hf_to_gguf ModelBase.prepare_tensors: which tensors are always stored as F32.
bool converter_keeps_f32(const std::string& name, size_t n_dims) {
  return n_dims <= 1 || name.ends_with("_norm.weight") || name.find("ffn_gate_inp.weight") != std::string::npos ||
         !name.ends_with(".weight");
}

std::vector<int64_t> reversed(const std::vector<int64_t>& shape) { return {shape.rbegin(), shape.rend()}; }

// rope_freqs.weight: llama.cpp divides each RoPE frequency by its factor. Llama 3 scaling and
// Gemma 4's proportional RoPE are expressed this way (runtime/model/config.h). With LongRoPE
// the converter writes rope_factors_long/short.weight instead (Phi3MiniModel.generate_extra_tensors),
// which llama_model::get_rope_factors picks from by context length.
std::vector<std::pair<std::string, std::vector<float>>> rope_factor_tensors(const ModelConfig& cfg) {
  for (const auto& l : cfg.layers) {
    if (!l.rope_freq_factors_long.empty())
      return {{"rope_factors_long.weight", l.rope_freq_factors_long}, {"rope_factors_short.weight", l.rope_freq_factors}};
    if (!l.rope_freq_factors.empty()) return {{"rope_freqs.weight", l.rope_freq_factors}};
  }
  return {};
}

// Element-wise and independent per element: parallel over the OpenMP pool, same result.
void decode_to_f32(DType t, const uint8_t* bytes, int64_t n, float* out) {
  const auto* h = reinterpret_cast<const uint16_t*>(bytes);  // safetensors/GGUF data is LE
  switch (t) {
    case DType::kF32: std::memcpy(out, bytes, size_t(n) * 4); break;
    case DType::kF16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, h + i, 2);
        out[i] = f16_to_f32(v);
      }
      break;
    case DType::kBF16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, h + i, 2);
        out[i] = bf16_to_f32(v);
      }
      break;
    default: quant::dequantize_row(t, bytes, out, n);
  }
}

void apply_transform(const GgufTensorPlan& plan, float* rows, int64_t n_rows) {
  switch (plan.transform) {
    case GgufTransform::kNone: break;
    case GgufTransform::kPermuteRopeQ:
    case GgufTransform::kPermuteRopeK: {
      const int64_t head_rows = plan.n_rows() / plan.permute_heads;  // slabs hold whole heads
      arch::permute_rope_rows(rows, n_rows, plan.ne[0], int(n_rows / head_rows));
      break;
    }
    case GgufTransform::kAddOne:
      // Gemma 1-3 RMSNorm scales by (1 + w) and llama.cpp stores 1 + w. Added in f32 as HF's
      // Gemma3RMSNorm computes it (llama.cpp's converter adds in the checkpoint dtype; for
      // bf16 checkpoints its values differ from ours by at most one bf16 rounding).
      for (int64_t i = 0; i < n_rows * plan.ne[0]; ++i) rows[i] += 1.0f;
      break;
  }
}

// The loader's order (layer, then name): llama-quantize's mix counters and its output follow it.
std::vector<GgufTensorPlan> in_llama_order(std::vector<GgufTensorPlan> plans) {
  std::vector<PolicyTensor> order;
  for (const auto& p : plans) order.push_back({p.name, p.base_type, p.ne, p.quant_class});
  sort_llama_order(order);
  std::map<std::string, GgufTensorPlan*> index;
  for (auto& p : plans) index[p.name] = &p;
  std::vector<GgufTensorPlan> sorted;
  for (const auto& t : order) sorted.push_back(std::move(*index[t.name]));
  return sorted;
}

}  // namespace

std::vector<GgufTensorPlan> plan_gguf_tensors(const OpenedModel& model) {
  const ArchSpec& arch = *model.desc.arch;
  const ModelConfig& cfg = model.desc.config;
  std::vector<GgufTensorPlan> plans;
  std::map<std::string, size_t> by_name;  // stacked experts share one GGUF tensor
  for (const auto& e : expected_tensors(arch, cfg)) {
    const TensorInfo* src = model.tensors->find(model.source_name(e.hf_name));
    if (!src) {
      TEMPER_CHECK(!e.required, "model is missing required tensor '", e.hf_name, "'");
      continue;
    }
    // The slab and permutation arithmetic below divides by these dims.
    TEMPER_CHECK(src->shape == e.shape, "tensor '", escaped(src->name), "' has shape ", shape_str(src->shape),
                 ", but the config implies ", shape_str(e.shape));
    auto it = by_name.find(e.gguf_name);
    if (it != by_name.end()) {  // another expert of a stacked tensor
      GgufTensorPlan& p = plans[it->second];
      TEMPER_CHECK(e.expert == int(p.parts.size()), "experts of '", e.gguf_name, "' are not in order");
      p.parts.push_back(src->name);
      p.ne.back() = int64_t(p.parts.size());
      continue;
    }
    GgufTensorPlan p;
    p.name = e.gguf_name;
    p.ne = reversed(src->shape);
    if (e.expert >= 0) p.ne.push_back(1);  // grows with each expert
    if (p.ne.empty()) p.ne = {1};
    p.base_type = converter_keeps_f32(p.name, p.ne.size()) ? DType::kF32 : src->dtype;
    p.transform = e.spec->to_gguf;
    p.quant_class = e.spec->quant_class;
    if (p.transform == GgufTransform::kPermuteRopeQ) p.permute_heads = cfg.layers[size_t(e.layer)].n_head;
    if (p.transform == GgufTransform::kPermuteRopeK) p.permute_heads = cfg.layers[size_t(e.layer)].n_head_kv;
    p.parts.push_back(src->name);
    by_name[p.name] = plans.size();
    plans.push_back(std::move(p));
  }
  for (auto& [name, values] : rope_factor_tensors(cfg)) {
    GgufTensorPlan p;
    p.name = name;
    p.ne = {int64_t(values.size())};
    p.base_type = DType::kF32;
    p.quant_class = QuantClass::kKeepF32;
    p.generated = std::move(values);
    plans.push_back(std::move(p));
  }
  return in_llama_order(std::move(plans));
}

std::vector<GgufTensorPlan> plan_from_gguf(const GgufFile& gguf) {
  const std::string& arch_name = gguf.get_string("general.architecture");
  const ArchSpec* arch = find_arch_by_gguf_name(arch_name);
  TEMPER_CHECK(arch, gguf.path(), ": general.architecture '", escaped(arch_name),
               "' has no tensor table in temper, so its tensors' quantization categories are unknown");
  std::vector<GgufTensorPlan> plans;
  for (const auto& t : gguf.tensors()) {
    GgufTensorPlan p;
    p.name = t.name;
    p.ne = reversed(t.shape);
    p.base_type = t.dtype;
    p.parts = {t.name};
    if (const TensorSpec* spec = find_tensor_spec_by_gguf_name(*arch, t.name)) p.quant_class = spec->quant_class;
    plans.push_back(std::move(p));
  }
  return in_llama_order(std::move(plans));
}

void for_each_slab(const TensorSource& src, const GgufTensorPlan& plan, int64_t max_rows, const SlabFn& fn,
                   ScratchBuffer<float>& rows_buffer) {
  const int64_t n_cols = plan.ne[0];
  if (plan.parts.empty()) {
    fn(plan.generated.data(), 0, plan.n_rows(), -1);
    return;
  }
  const int64_t rows_per_part = plan.n_rows() / int64_t(plan.parts.size());
  int64_t step = std::max<int64_t>(1, max_rows);
  if (plan.permute_heads > 0) {  // whole heads per slab
    const int64_t head_rows = rows_per_part / plan.permute_heads;
    step = std::max<int64_t>(head_rows, step / head_rows * head_rows);
  }
  // Rows of one matrix: a 3-D tensor stored whole (GGUF input) holds ne[2] expert matrices,
  // and a slab never crosses from one to the next (each has its own imatrix slice).
  const int64_t matrix_rows = (plan.parts.size() == 1 && plan.ne.size() >= 3) ? plan.ne[1] : rows_per_part;
  step = std::min(step, matrix_rows);
  std::vector<uint8_t> scratch;
  for (size_t part = 0; part < plan.parts.size(); ++part) {
    const TensorInfo* t = src.find(plan.parts[part]);
    TEMPER_CHECK(t && int64_t(t->numel()) == rows_per_part * n_cols, "tensor '", plan.parts[part],
                 "' does not match its GGUF plan ", plan.name);
    const auto bytes = src.read(*t, scratch);
    const uint64_t row_bytes = dtype_bytes(t->dtype, uint64_t(n_cols));
    for (int64_t m0 = 0; m0 < rows_per_part; m0 += matrix_rows) {
      for (int64_t r0 = m0; r0 < m0 + matrix_rows; r0 += step) {
        const int64_t n = std::min(step, m0 + matrix_rows - r0);
        float* rows = rows_buffer.get(size_t(n * n_cols)).data();
        decode_to_f32(t->dtype, bytes.data() + uint64_t(r0) * row_bytes, n * n_cols, rows);
        apply_transform(plan, rows, n);
        const int64_t first = int64_t(part) * rows_per_part + r0;
        const bool experts = plan.parts.size() > 1 || matrix_rows < rows_per_part;
        fn(rows, first, n, experts ? int(first / (plan.n_rows() / plan.ne.back())) : -1);
      }
    }
    src.release(*t);
  }
}

std::vector<float> load_planned_tensor_f32(const TensorSource& src, const GgufTensorPlan& plan) {
  std::vector<float> out(size_t(plan.n_rows() * plan.ne[0]));
  ScratchBuffer<float> rows_buffer;
  for_each_slab(src, plan, plan.n_rows(), [&](const float* rows, int64_t first, int64_t n, int) {
    std::memcpy(out.data() + first * plan.ne[0], rows, size_t(n * plan.ne[0]) * sizeof(float));
  }, rows_buffer);
  return out;
}

}  // namespace temper
