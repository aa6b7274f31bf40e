// The adapter file temper train writes (.h5; layout in docs/adapter-format.md): PEFT's
// lora_A / lora_B of every adapted projection under its HF module name, plus rank, alpha,
// rsLoRA, targets, the base model's identity and the training arguments. A training
// checkpoint (checkpoint.h) is the same file with a /checkpoint group added.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "formats/lora_adapter.h"
#include "formats/tensor_source.h"
#include "model/model_desc.h"
#include "train/train.h"

namespace temper::h5 {
class Ctx;
}

namespace temper::train {

// What the adapter file records about where it came from.
struct AdapterProvenance {
  std::string base_path;           // the base model as given (never overwritten)
  std::string config_sha256;       // base_config_sha256()
  std::string tensors_sha256;      // base_tensors_fingerprint()
  std::string training_args_json;  // the `temper train` options as a JSON object
};

// SHA-256 of the base's config.json (for a temper checkpoint: of the one it was converted from).
std::string base_config_sha256(const ModelDescription& base);
// SHA-256 over every tensor of the base in name order: its name, dtype, shape and bytes, of
// which at most 3 × 64 KiB are hashed (start, middle, end). Tells apart two bases with the same
// config.json and different weights (a fine-tune of the same architecture) without hashing
// every byte: from a mapped HF folder only those pages are touched; a temper .h5 reads each
// tensor whole (no mapping), about the cost of loading it once more.
std::string base_tensors_fingerprint(const TensorSource& tensors);

// A pair's module in the adapter file, "model.layers.{L}.{module}", and the dataset name of
// its A or B: that + ".lora_A" / ".lora_B".
std::string adapter_module_name(const LoraPair& p);
std::string adapter_dataset_name(const LoraPair& p, bool is_b);

// Writes through a temporary file renamed into place when complete; refuses to overwrite an
// existing file unless `overwrite`, and never overwrites the base. Throws Error naming the
// file on failure (nothing is left behind, an existing file stays as it was). `extra` adds
// objects before the file is closed (the checkpoint's /checkpoint group).
void write_adapter(const std::string& path, bool overwrite, const LoraModel& model,
                   const ModelDescription& base, const AdapterProvenance& provenance,
                   const LoraExtraWriter& extra = {});

}  // namespace temper::train
