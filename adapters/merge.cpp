// `temper lora merge`: W' = W + Σ m·s·B·A, in f32 from the base's weights (dequantised when the
// base is a quantized GGUF), stored back in each weight's own type. From a temper checkpoint or
// HF folder the result is a checkpoint (.h5), or with -t a GGUF through the quantize stage;
// from a GGUF base it is a GGUF with the same types (or, with -t, requantized).
#include <filesystem>
#include <map>

#include "adapters/lora.h"
#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/log.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/lora_adapter.h"
#include "forward/lora_apply.h"
#include "model/arch/common.h"
#include "model/open_model.h"
#include "quant/quant.h"
#include "quantize/quantize.h"

namespace temper {

namespace fs = std::filesystem;

namespace {

// Every adapter's update of one base weight: ΔW (out, in) = Σ m·s·B·A, B's rows in the base's
// layout (permuted for a GGUF base's Llama q/k).
struct Delta {
  int64_t out = 0, in = 0;
  std::vector<double> w;  // (out, in)
};

struct Loaded {
  std::vector<LoraAdapter> adapters;
  std::map<std::string, Delta> by_tensor;  // key: the base tensor's name in its own source
};

Loaded load_deltas(const OpenedModel& base, const std::vector<std::string>& specs) {
  Loaded l;
  l.adapters.reserve(specs.size());
  const bool gguf = base.format == ModelFormat::kGguf;
  for (const std::string& spec : specs) {
    const LoraSpec s = parse_lora_spec(spec);
    l.adapters.push_back(read_lora_adapter(s.path));
    const LoraAdapter& a = l.adapters.back();
    const double scale = double(s.multiplier) * a.scale();
    for (const forward::LoraTarget& t : forward::match_lora_to_base(base.desc, a, s.path)) {
      const LoraTensorPair& p = *t.pair;
      // A GGUF holds each layer's experts stacked in one tensor; the delta is one expert's.
      TEMPER_CHECK(!gguf || t.tensor.expert < 0, "LoRA adapter ", escaped(s.path), ": '", escaped(p.module),
                   "' adapts one expert, which cannot be merged into a GGUF base (its experts are stacked "
                   "in ", t.tensor.gguf_name, "); merge into the .h5 or Hugging Face base, then quantize");
      std::vector<float> b = p.b;
      if (gguf && t.rope_permute_heads > 0) arch::permute_rope_rows(b.data(), p.out, a.rank, t.rope_permute_heads);
      const std::string name = gguf ? t.tensor.gguf_name : base.source_name(t.tensor.hf_name);
      // A fused tensor (Phi-3's qkv_proj, gate_up_proj) takes each block's update in its rows.
      Delta& d = l.by_tensor[name];
      if (d.w.empty()) {
        d.out = t.tensor.shape[0];
        d.in = p.in;
        d.w.assign(size_t(d.out * d.in), 0.0);
      }
#pragma omp parallel for schedule(static)
      for (int64_t o = 0; o < p.out; ++o)
        for (int k = 0; k < a.rank; ++k) {
          const double bk = scale * b[size_t(o * a.rank + k)];
          const float* ak = &p.a[size_t(k) * size_t(p.in)];
          double* row = &d.w[size_t((t.row0 + o) * p.in)];
          for (int64_t i = 0; i < p.in; ++i) row[i] += bk * ak[i];
        }
    }
  }
  return l;
}

// W (stored as `type`) + ΔW, re-encoded as `out_type`.
std::vector<uint8_t> merged_bytes(std::span<const uint8_t> stored, DType type, const Delta& d, DType out_type) {
  std::vector<float> w(size_t(d.out * d.in));
  const uint64_t row_bytes = dtype_bytes(type, uint64_t(d.in));
  for (int64_t o = 0; o < d.out; ++o) quant::dequantize_row(type, stored.data() + o * row_bytes, &w[size_t(o * d.in)], d.in);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(double(w[i]) + d.w[i]);
  std::vector<uint8_t> out(dtype_bytes(out_type, uint64_t(w.size())));
  quant::quantize_rows(out_type, w.data(), out.data(), d.out, d.in, nullptr);
  return out;
}

std::string temp_name(const std::string& output, const char* ext) {
  const fs::path p(output);
  return (p.parent_path() / ("." + p.filename().string() + ".merge-tmp" + ext)).string();
}

// Checkpoint or HF base -> temper checkpoint.
void merge_to_checkpoint(const OpenedModel& base, const Loaded& l, const std::string& output, bool overwrite,
                         const std::vector<std::string>& inputs, bool final_output) {
  AtomicOutput out(output, overwrite, inputs);
  size_t n_merged = 0;
  {
    ModelDescription desc = base.desc;
    CheckpointWriter writer(out.temp_path(), CheckpointWriteOptions{});
    writer.write_description(desc);
    std::vector<uint8_t> scratch;
    for (const ExpectedTensor& e : expected_tensors(*desc.arch, desc.config)) {
      const TensorInfo* src = base.tensors->find(base.source_name(e.hf_name));
      if (!src) continue;  // optional and absent (e.g. lm_head of tied embeddings)
      TensorInfo info = *src;
      info.name = e.hf_name;
      const std::span<const uint8_t> bytes = base.tensors->read(*src, scratch);
      auto it = l.by_tensor.find(src->name);
      if (it == l.by_tensor.end()) {
        writer.write_tensor(info, bytes);
      } else {
        TEMPER_CHECK(quant::supports(src->dtype), "cannot merge into '", src->name, "' stored as ",
                     dtype_name(src->dtype));
        writer.write_tensor(info, merged_bytes(bytes, src->dtype, it->second, src->dtype));
        ++n_merged;
      }
      base.tensors->release(*src);
    }
    writer.close();
  }
  out.commit();
  TEMPER_CHECK(n_merged == l.by_tensor.size(), "merged ", n_merged, " of ", l.by_tensor.size(), " adapted tensors");
  if (final_output) info("wrote ", output, ": ", n_merged, " weights merged in f32 and stored in the base's dtype");
}

// GGUF base -> GGUF: KVs and untouched tensors copied; merged tensors in `type_of(original)`.
void merge_to_gguf(const std::string& base_path, const Loaded& l, const std::string& output, bool overwrite,
                   const std::vector<std::string>& inputs, bool merged_as_f32) {
  const GgufFile g(base_path);
  AtomicOutput out(output, overwrite, inputs);
  GgufWriter w(out);
  for (const GgufKV& kv : g.kvs())
    if (kv.key != "general.alignment") w.add(kv.key, kv.value);
  size_t n_merged = 0;
  for (const TensorInfo& t : g.tensors()) {
    const bool merged = l.by_tensor.count(t.name) != 0;
    n_merged += merged;
    w.add_tensor(t.name, merged && merged_as_f32 ? DType::kF32 : t.dtype, t.shape);
  }
  TEMPER_CHECK(n_merged == l.by_tensor.size(), base_path, ": ", l.by_tensor.size() - n_merged,
               " adapted tensors are missing from the GGUF");
  w.write_header();
  std::vector<uint8_t> scratch;
  for (const TensorInfo& t : g.tensors()) {
    const std::span<const uint8_t> bytes = g.read(t, scratch);
    auto it = l.by_tensor.find(t.name);
    if (it == l.by_tensor.end())
      w.write_tensor_data(t.name, bytes);
    else
      w.write_tensor_data(t.name, merged_bytes(bytes, t.dtype, it->second, merged_as_f32 ? DType::kF32 : t.dtype));
  }
  w.finish();
}

}  // namespace

void merge_lora(const LoraMergeOptions& opts) {
  TEMPER_CHECK(!opts.adapters.empty(), "lora merge needs at least one adapter");
  const OpenedModel base = open_model(opts.base);
  const Loaded l = load_deltas(base, opts.adapters);
  std::vector<std::string> inputs = base.files;
  inputs.push_back(opts.base);
  for (const std::string& spec : opts.adapters) inputs.push_back(parse_lora_spec(spec).path);
  const bool to_gguf = !opts.gguf_type.empty();

  if (base.format == ModelFormat::kGguf) {
    bool quantized = false;
    for (const auto& [name, d] : l.by_tensor) quantized |= base.tensors->find(name)->dtype != DType::kF32 &&
                                                           base.tensors->find(name)->dtype != DType::kF16 &&
                                                           base.tensors->find(name)->dtype != DType::kBF16;
    if (quantized)
      warn(opts.base, " is quantized: the adapters are merged into its dequantised weights (those a QLoRA run "
                      "trained on) and the result is quantized again; merging into the original unquantized "
                      "model gives a better result");
    TEMPER_CHECK(to_gguf || opts.output.ends_with(".gguf"), "a GGUF base merges into a GGUF: give -o OUT.gguf (", 
                 escaped(opts.output), ")");
    if (!to_gguf) {
      merge_to_gguf(opts.base, l, opts.output, opts.overwrite, inputs, false);
      info("wrote ", opts.output, ": ", l.by_tensor.size(), " weights merged, each stored in its original type");
      return;
    }
    const std::string tmp = temp_name(opts.output, ".gguf");
    struct Remove {
      std::string p;
      ~Remove() { std::error_code ec; fs::remove(p, ec); }
    } cleanup{tmp};
    merge_to_gguf(opts.base, l, tmp, true, inputs, true);
    QuantizeOptions q;
    q.input = tmp;
    q.output = opts.output;
    q.type = opts.gguf_type;
    q.overwrite = opts.overwrite;
    q.allow_requantize = true;
    q.write_modelfile = opts.modelfile;
    const QuantizeReport r = quantize_model(q);
    info("wrote ", opts.output, " (", r.file_type, "): ", l.by_tensor.size(),
         " weights merged into the dequantised base, then quantized", r.modelfile.empty() ? "" : ", and " + r.modelfile);
    return;
  }
  if (!to_gguf) {
    TEMPER_CHECK(!opts.output.ends_with(".gguf"), "-o ", escaped(opts.output),
                 ": without -t TYPE the merged model is a temper checkpoint (.h5); add -t F16, Q8_0, ... for a GGUF");
    merge_to_checkpoint(base, l, opts.output, opts.overwrite, inputs, true);
    return;
  }
  const std::string tmp = temp_name(opts.output, ".h5");
  struct Remove {
    std::string p;
    ~Remove() { std::error_code ec; fs::remove(p, ec); }
  } cleanup{tmp};
  merge_to_checkpoint(base, l, tmp, true, inputs, false);
  QuantizeOptions q;
  q.input = tmp;
  q.output = opts.output;
  q.type = opts.gguf_type;
  q.overwrite = opts.overwrite;
  q.write_modelfile = opts.modelfile;
  const QuantizeReport r = quantize_model(q);
  info("wrote ", opts.output, " (", r.file_type, "): ", l.by_tensor.size(), " weights merged in f32",
       r.modelfile.empty() ? "" : ", and " + r.modelfile);
}

}  // namespace temper
