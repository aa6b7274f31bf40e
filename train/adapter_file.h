// The adapter file temper train writes (.h5; layout in docs/adapter-format.md): PEFT's
// lora_A / lora_B of every adapted projection under its HF module name, plus rank, alpha,
// rsLoRA, targets, the base model's identity and the training arguments.
#pragma once
#include <string>

#include "model/model_desc.h"
#include "train/train.h"

namespace temper::train {

// Writes through a temporary file renamed into place when complete; refuses to overwrite an
// existing file unless `overwrite`, and never overwrites `base_path`. Throws Error naming the
// file on failure (nothing is left behind).
void write_adapter(const std::string& path, bool overwrite, const LoraModel& model,
                   const ModelDescription& base, const std::string& base_path,
                   const std::string& training_args_json);

}  // namespace temper::train
