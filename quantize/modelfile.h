// Ollama Modelfile for a GGUF: FROM, the prompt template, stop tokens from the tokenizer and
// sampling defaults from generation_config.json.
#pragma once
#include <string>

#include "model/model_desc.h"

namespace temper {

// `from` is written verbatim after FROM: "./<name>" when the Modelfile sits beside the GGUF
// (Ollama resolves relative paths from the Modelfile's folder), else an absolute path.
std::string make_modelfile(const ModelDescription& desc, const std::string& from);

}  // namespace temper
