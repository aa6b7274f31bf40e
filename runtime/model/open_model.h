// Opens a model from any source temper reads: a Hugging Face folder (or a .safetensors file in
// one), or a temper checkpoint (.h5). The stages use this instead of caring where weights live.
#pragma once
#include <memory>
#include <string>

#include "formats/tensor_source.h"
#include "model/model_desc.h"

namespace temper {

enum class ModelFormat { kHfFolder, kCheckpoint, kGguf };

struct OpenedModel {
  ModelFormat format;
  std::unique_ptr<TensorSource> tensors;
  ModelDescription desc;
  // Tensor name in `tensors` of each canonical HF name (identity for checkpoints; wrapper
  // prefixes such as "model.language_model." for HF folders).
  std::string source_name(const std::string& canonical) const;
  std::vector<std::string> files;  // input files, never to be overwritten
 private:
  friend OpenedModel open_model(const std::string& path);
  std::vector<std::pair<std::string, std::string>> renames_;  // canonical -> stored, when different
};

// Detects the format from the path (folder, HDF5 signature). Throws Error naming the path for
// anything else; GGUF input is refused here with a hint (quantize reads checkpoints).
OpenedModel open_model(const std::string& path);

// Detects the format of a file or folder without opening it fully.
ModelFormat detect_model_format(const std::string& path);

}  // namespace temper
