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
  // How the forward pass binds `tensors` (its LoadOptions): GGUF tensors are named by the arch
  // table's gguf_name with experts stacked, and llama.cpp scales embeddings by the exact
  // sqrt(n_embd) instead of HF's value rounded to the embedding dtype. desc.config already
  // describes the GGUF layout (interleaved RoPE for llama, Gemma norms stored as 1 + w).
  bool gguf_tensor_names = false;
  bool embed_scale_in_weight_dtype = true;
 private:
  friend OpenedModel open_model(const std::string& path);
  std::vector<std::pair<std::string, std::string>> renames_;  // canonical -> stored, when different
};

// Detects the format from the path (folder, HDF5 or GGUF signature). Throws Error naming the
// path for anything else. GGUF source_name() is the identity (its tensors are not HF tensors:
// q/k permuted, norms shifted, experts stacked); stages that need HF tensors must refuse kGguf.
OpenedModel open_model(const std::string& path);

// Detects the format of a file or folder without opening it fully.
ModelFormat detect_model_format(const std::string& path);

}  // namespace temper
