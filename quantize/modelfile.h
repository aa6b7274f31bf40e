// Ollama Modelfile for a GGUF: FROM, the prompt template, stop tokens from the tokenizer and
// sampling defaults from generation_config.json.
#pragma once
#include <string>

#include "model/model_desc.h"

namespace temper {

// `gguf_file_name` is written as FROM ./<name> (the Modelfile sits beside the GGUF).
std::string make_modelfile(const ModelDescription& desc, const std::string& gguf_file_name);

}  // namespace temper
