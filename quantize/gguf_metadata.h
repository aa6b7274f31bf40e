// The GGUF key/value metadata of a model: general.*, the architecture's hyperparameters and
// tokenizer.ggml.* — the keys, types and values llama.cpp's own converter
// (convert_hf_to_gguf.py of the llama.cpp release temper is tested against) writes for the same
// Hugging Face folder, so llama.cpp and Ollama load temper's GGUFs unchanged.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "model/gguf_kv.h"
#include "model/model_desc.h"
#include "quantize/policy.h"

namespace temper {

// All metadata for a model file of type `ftype`, in the converter's order, including
// general.file_type and general.quantization_version. Throws Error naming the config key or
// tokenizer file at fault.
GgufKvList gguf_model_metadata(const ModelDescription& desc, FileType ftype);

// Only the tokenizer.ggml.* / tokenizer.chat_template keys.
GgufKvList gguf_tokenizer_metadata(const ModelDescription& desc);

}  // namespace temper
