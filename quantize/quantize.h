// The quantize stage: a temper checkpoint or Hugging Face folder (or, with --allow-requantize,
// a GGUF) -> a GGUF that llama.cpp and Ollama load unchanged, with llama.cpp's per-tensor type
// choices and block bytes identical to ggml's quantizers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/bits_per_weight.h"
#include "quantize/bpw_mix.h"
#include "quantize/calibrate.h"

namespace CLI {
class App;
}

namespace temper {

struct QuantizeOptions {
  std::string input, output;
  std::string type = "Q4_K_M";                // file type, e.g. Q8_0, Q4_K_M, F16
  bool overwrite = false;                     // --force
  // --force too: write a GGUF llama.cpp would misread or refuse (quantize/llama_compat.h),
  // recording why in its metadata, instead of refusing it.
  bool allow_llama_incompatible = false;
  bool dry_run = false;                       // print the plan, write nothing
  bool pure = false;                          // no mix: the default type everywhere
  bool allow_requantize = false;              // accept already-quantized GGUF input
  bool write_modelfile = false;               // Ollama Modelfile beside the GGUF
  std::string output_tensor_type;             // "" = the mix's choice
  std::string token_embedding_type;
  std::vector<std::string> tensor_types;      // "REGEX=TYPE", first match wins
  std::string imatrix;                        // llama.cpp importance matrix (.gguf or .dat)
  bool qat_detect = true;                     // measure Q4_0 lattices (quantize/qat.h)
  CalibrateOptions calibrate;                 // --calibrate DATA: tuned rounding (quantize/calibrate.h)
  MixOptions mix;                             // --target-bpw / --max-kld: types by measured KL (quantize/bpw_mix.h)
};

// What the Q4_0-lattice measurement found (quantize/qat.h).
struct QatSummary {
  bool checked = false;
  int tensors_measured = 0, tensors_on_lattice = 0;
  int64_t blocks = 0, blocks_on_lattice = 0;  // non-zero blocks of the tensors on the lattice
  int64_t blocks_written_exact = 0;           // after writing: blocks encoded from the lattice
  int64_t blocks_off_lattice = 0;             // blocks of those tensors rounded as ggml does
};

struct QuantizedTensorRow {
  std::string name;
  std::vector<int64_t> ne;
  DType type, base_type;
  uint64_t bytes;
  std::string note;
  double calib_error = -1, calib_error_plain = -1;  // --calibrate: tr((W-Q)H(W-Q)ᵀ)/rows, tuned and plain
};

struct QuantizeReport {
  std::string output, file_type, modelfile;
  std::vector<QuantizedTensorRow> tensors;
  uint64_t n_params = 0, bytes = 0;
  int n_fallback = 0;
  std::vector<std::string> warnings;
  QatSummary qat;
  int calib_tensors = 0, calib_gptq = 0;  // --calibrate: tensors tuned, and of those kept from GPTQ
  int calib_ctx = 0, calib_chunks = 0;
  MixReport mix;                          // --target-bpw / --max-kld
  double seconds = 0;
  double bits_per_weight() const { return temper::bits_per_weight(bytes, n_params); }  // bytes: tensors only
};

// Throws Error naming the file/tensor at fault (unknown type names list the valid ones;
// NaN/Inf weights name the tensor and index); on failure no output is left behind.
QuantizeReport quantize_model(const QuantizeOptions& opts);

void add_quantize_command(CLI::App& app);

}  // namespace temper
