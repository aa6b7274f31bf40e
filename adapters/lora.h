// The adapters stage (issue 10): a LoRA adapter (.h5 from `temper train` or `lora import`) out
// to where users run it (a GGUF LoRA for llama.cpp/Ollama, a PEFT folder, or merged into the
// base), and PEFT adapters trained elsewhere in. Depends on runtime/ (adapter file, model
// description) and quantize/ (merge straight to GGUF).
#pragma once
#include <string>
#include <vector>

#include "core/dtype.h"

namespace CLI {
class App;
}

namespace temper {

// Registers `temper lora export|import|merge` (adapters/cli.cpp).
void add_lora_command(CLI::App& app);

// `lora export ADAPTER --base BASE --gguf OUT`: llama.cpp's GGUF LoRA layout
// (src/llama-adapter.cpp): general.type = adapter, adapter.type = lora, adapter.lora.alpha,
// the base's general.architecture; per adapted weight `blk.N.<t>.weight.lora_a` (ne [in, r])
// and `.lora_b` (ne [r, out]); Llama's q/k rows of B permuted as the converter does; the
// scale folded into alpha (llama.cpp applies alpha / r: rsLoRA's alpha / sqrt(r) becomes
// alpha' = alpha · sqrt(r)). `type`: F32, F16, BF16 or Q8_0 (a tensor whose rows are not whole
// Q8_0 blocks falls back to F16 with a warning, as llama.cpp's converter does).
// `modelfile` (base must be a GGUF) also writes OUT's stem + ".Modelfile": FROM the base, the
// base's template and stops, and ADAPTER OUT — Ollama's adapter route, which some Ollama
// versions refuse at create time (warned; the merged GGUF is the route every version loads).
struct GgufLoraExportOptions {
  std::string adapter, base, output;
  DType type = DType::kF32;
  bool overwrite = false;
  bool modelfile = false;
};
void export_lora_gguf(const GgufLoraExportOptions& opts);

// `lora merge BASE ADAPTER[:SCALE]... -o OUT`: W' = W + Σ m·s·B·A computed in f32 from the
// base's (dequantised) weights; stored in the base's dtype in a temper checkpoint (.h5), or,
// with `gguf_type`, quantized straight to a GGUF through the quantize stage.
struct LoraMergeOptions {
  std::string base;
  std::vector<std::string> adapters;  // ADAPTER[:SCALE]
  std::string output;
  std::string gguf_type;  // "" = write a .h5 checkpoint; else a quantize file type (Q8_0, ...)
  bool overwrite = false;
  bool modelfile = false;  // with gguf_type: an Ollama Modelfile beside the GGUF
};
void merge_lora(const LoraMergeOptions& opts);

// `lora export ADAPTER --peft DIR [--base BASE]`: adapter_config.json + adapter_model.safetensors
// with PEFT's key names (base_model.model.<HF module>.lora_A.weight [r, in], lora_B [out, r]).
// An architecture with fused tensors (Phi-3's qkv_proj, gate_up_proj) needs `base`: the
// adapters on a fused tensor's row blocks are written as that one module (adapters/fused_lora.h
// fuse_lora_blocks), with rank_pattern/alpha_pattern where its rank is not r.
void export_lora_peft(const std::string& adapter, const std::string& dir, bool overwrite,
                      const std::string& base = "");

// `lora import PEFT_DIR --base BASE -o OUT.h5`: a PEFT LoRA folder (adapter_model.safetensors)
// checked against the base and written as temper's adapter file. A fused module (Phi-3's
// qkv_proj, gate_up_proj) becomes adapters on its row blocks (same A, B's rows of the block).
// rank_pattern/alpha_pattern are honoured where the module fits the adapter's one rank r (a
// larger rank whose extra components are zero, a smaller one padded; another scale folded into
// B). Anything temper cannot represent (DoRA, biases, modules_to_save, a module of more than r
// non-zero components, unknown targets) is an error naming the tensor or key.
void import_lora_peft(const std::string& dir, const std::string& base, const std::string& output,
                      bool overwrite);

}  // namespace temper
