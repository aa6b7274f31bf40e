// `temper lora export --gguf`: temper's adapter -> llama.cpp's GGUF LoRA (see lora.h and
// ../shared/docs/gguf-and-quantization.md §5.2-5.3).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include "adapters/fused_lora.h"
#include "adapters/lora.h"
#include "core/error.h"
#include "core/escape.h"
#include "core/half.h"
#include "core/log.h"
#include "formats/gguf.h"
#include "formats/lora_adapter.h"
#include "forward/lora_apply.h"
#include "model/arch/common.h"
#include "model/open_model.h"
#include "quant/quant.h"
#include "quantize/modelfile.h"

namespace temper {

namespace {

// A (rows, cols) f32 matrix in `type`, row-major as GGUF stores ne [cols, rows].
std::vector<uint8_t> encode(const std::vector<float>& m, int64_t rows, int64_t cols, DType type) {
  std::vector<uint8_t> out(dtype_bytes(type, uint64_t(rows * cols)));
  if (type == DType::kF32) {
    std::memcpy(out.data(), m.data(), out.size());
  } else {
    quant::quantize_rows(type, m.data(), out.data(), rows, cols, nullptr);
  }
  return out;
}

// Q8_0 needs whole 32-element blocks per row (lora_b's rows are r long); llama.cpp's
// converter falls back to F16 for such tensors (ModelBase.prepare_tensors, QuantError).
DType type_for(DType wanted, int64_t cols, std::vector<std::string>& fell_back, const std::string& name) {
  if (wanted == DType::kQ8_0 && cols % 32 != 0) {
    fell_back.push_back(name);
    return DType::kF16;
  }
  return wanted;
}

// The Modelfile beside the adapter: FROM the base GGUF ("./name" when it sits in the same
// folder, else its absolute path), then ADAPTER ./<adapter>. Ollama reads a Modelfile line by
// line, so a path with a line break or a quote cannot be written.
std::string adapter_modelfile(const ModelDescription& desc, const std::filesystem::path& base,
                              const std::filesystem::path& adapter) {
  namespace fs = std::filesystem;
  const fs::path base_abs = fs::absolute(base).lexically_normal(),
                 dir = fs::absolute(adapter).lexically_normal().parent_path();
  const std::string from =
      base_abs.parent_path() == dir ? "./" + base_abs.filename().string() : base_abs.string();
  for (const std::string& p : {from, adapter.filename().string()})
    TEMPER_CHECK(p.find_first_of("\n\r\"") == std::string::npos, "cannot write the path ",
                 escaped(p), " into a Modelfile (a line break or quote in it)");
  return make_modelfile(desc, from) + "\n# LoRA adapter (llama.cpp GGUF LoRA)\nADAPTER ./" +
         adapter.filename().string() + "\n";
}

}  // namespace

void export_lora_gguf(const GgufLoraExportOptions& opts) {
  TEMPER_CHECK(opts.type == DType::kF32 || opts.type == DType::kF16 || opts.type == DType::kBF16 ||
                   opts.type == DType::kQ8_0,
               "GGUF LoRA tensors can be F32, F16, BF16 or Q8_0, not ", dtype_name(opts.type));
  const LoraAdapter a = read_lora_adapter(opts.adapter);
  const OpenedModel base = open_model(opts.base);
  const std::vector<forward::LoraTarget> targets = forward::match_lora_to_base(base.desc, a, opts.adapter);
  // llama.cpp: scale = alpha / rank (llama_adapter_lora_weight::get_scale, rank = lora_b ne[0]).
  const float alpha = float(double(a.scale()) * a.rank);

  std::vector<std::string> inputs = base.files;
  inputs.push_back(opts.adapter);
  std::optional<AtomicOutput> modelfile;
  std::string modelfile_text;
  const std::filesystem::path out_path(opts.output);
  const std::string modelfile_path =
      (out_path.parent_path() / (out_path.stem().string() + ".Modelfile")).string();
  if (opts.modelfile) {
    TEMPER_CHECK(base.format == ModelFormat::kGguf, "--modelfile: Ollama's ADAPTER needs FROM a GGUF base; ",
                 escaped(opts.base), " is not one (quantize it first, or use `temper lora merge -t TYPE --modelfile`)");
    modelfile_text = adapter_modelfile(base.desc, opts.base, out_path);
    modelfile.emplace(modelfile_path, opts.overwrite, inputs);
  }
  AtomicOutput out(opts.output, opts.overwrite, inputs);
  GgufWriter w(out);
  w.add_string("general.architecture", std::string(base.desc.arch->gguf_arch));
  w.add_string("general.type", "adapter");
  w.add_string("general.name", "temper LoRA adapter");
  w.add_string("adapter.type", "lora");
  w.add_f32("adapter.lora.alpha", alpha);
  w.add_u32("general.quantization_version", 2);

  struct Tensor {
    std::string name;
    std::vector<uint8_t> bytes;
  };
  std::vector<Tensor> tensors;
  std::vector<std::string> fell_back;
  auto add_pair = [&](const std::string& gguf_name, const std::vector<float>& pa, const std::vector<float>& pb,
                      int64_t rank, int64_t in, int64_t out) {
    const std::string name_a = gguf_name + ".lora_a", name_b = gguf_name + ".lora_b";
    TEMPER_CHECK(name_b.size() <= kGgufMaxTensorName, "GGUF tensor name '", name_b, "' is longer than ",
                 kGgufMaxTensorName, " bytes");
    const DType ta = type_for(opts.type, in, fell_back, name_a), tb = type_for(opts.type, rank, fell_back, name_b);
    const int64_t shape_a[2] = {rank, in}, shape_b[2] = {out, rank};  // PyTorch order
    w.add_tensor(name_a, ta, shape_a);
    w.add_tensor(name_b, tb, shape_b);
    tensors.push_back({name_a, encode(pa, rank, in, ta)});
    tensors.push_back({name_b, encode(pb, out, rank, tb)});
  };
  // A fused tensor (Phi-3's attn_qkv, ffn_up) takes its blocks' adapters as one pair of rank
  // n·r (fused_lora.h). llama.cpp scales each pair by alpha / (its rank), n times less than
  // alpha / r: B is multiplied by n (exact for n = 1, 2; for n = 3 one f32 rounding, <= 2^-24
  // relative, per element).
  const auto fused = group_fused_targets(targets);
  size_t n_pairs = 0;
  for (const forward::LoraTarget& t : targets) {
    const LoraTensorPair& p = *t.pair;
    // llama.cpp's LoRA pairs are 2-D; its MoE experts are one stacked 3-D tensor per layer.
    TEMPER_CHECK(t.tensor.expert < 0, "LoRA adapter ", escaped(opts.adapter), ": '", escaped(p.module),
                 "' adapts one expert; llama.cpp's GGUF LoRA has no per-expert tensors (its experts are "
                 "stacked in ", t.tensor.gguf_name, "): merge the adapter into the model instead (temper lora merge)");
    auto f = fused.find(t.tensor.hf_name);
    if (f != fused.end()) {
      if (f->second.front() != &t) continue;  // the pair is written at its first block
      FusedLoraPair m = fuse_lora_blocks(f->second, a.rank);
      TEMPER_CHECK(t.rope_permute_heads == 0, "a fused tensor with permuted rows cannot take a LoRA");
      for (float& v : m.b) v *= float(m.n_stacked);
      add_pair(t.tensor.gguf_name, m.a, m.b, m.rank, m.in, m.out);
      ++n_pairs;
      continue;
    }
    std::vector<float> b = p.b;
    if (t.rope_permute_heads > 0)  // the converter permutes B's rows like W's (LoraTorchTensor)
      arch::permute_rope_rows(b.data(), p.out, a.rank, t.rope_permute_heads);
    add_pair(t.tensor.gguf_name, p.a, b, a.rank, p.in, p.out);
    ++n_pairs;
  }
  if (!fell_back.empty())
    warn(fell_back.size(), " tensors have rows that are not whole Q8_0 blocks (32 values; e.g. ", fell_back.front(),
         "): stored as F16");
  w.write_header();
  for (const Tensor& t : tensors) w.write_tensor_data(t.name, t.bytes);
  w.finish();
  if (modelfile) {
    modelfile->write(modelfile_text.data(), modelfile_text.size());
    modelfile->commit();
    warn("wrote ", modelfile_path, " with ADAPTER: some Ollama versions refuse adapters at `ollama create`; "
         "`temper lora merge BASE ADAPTER -t TYPE --modelfile` writes a merged GGUF that every version loads");
  }
  info("wrote ", opts.output, ": ", n_pairs, " adapted tensors, alpha ", alpha, " (scale ", a.scale(),
       a.rslora ? ", rsLoRA folded into alpha" : "", ")");
}

}  // namespace temper
