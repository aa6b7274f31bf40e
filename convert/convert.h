// The convert stage: read a Hugging Face checkpoint folder completely and faithfully and write
// temper's checkpoint (one HDF5 file), streaming tensor by tensor so memory stays bounded.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace temper {

struct ConvertOptions {
  std::string input;       // HF folder (or a single .safetensors file inside one)
  std::string output;      // .h5 path
  bool overwrite = false;  // --force
  int zstd_level = 0;      // --compress[=LEVEL]; 0 = off
};

struct ConvertReport {
  std::string arch, hf_architecture, output;
  uint64_t n_tensors = 0, n_params = 0, bytes_in = 0, bytes_out = 0;
  std::vector<std::string> skipped;  // tensors not converted, with the reason
  double seconds = 0;
};

// Throws Error naming the file/tensor/key at fault; on any failure no output is left behind.
ConvertReport convert_hf_to_checkpoint(const ConvertOptions& opts);

// Registers `temper convert`.
void add_convert_command(CLI::App& app);

}  // namespace temper
