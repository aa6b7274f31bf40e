// The llama.cpp-compatibility check run before any GGUF is written from a model description:
// each architecture's table of what the pinned llama.cpp release can represent
// (ArchSpec::llama_cpp_issues in runtime/model/arch/<arch>.cpp), applied to the config and the
// keys about to be written. README promises files llama.cpp loads unchanged; a config outside
// that table would load as another model, or abort.
#pragma once
#include <string>
#include <vector>

#include "model/model_desc.h"
#include "quantize/gguf_metadata.h"

namespace temper {

// GGUF key holding the issues of a file written anyway (--force), one per line.
inline constexpr const char* kLlamaCppWarningKey = "temper.llama_cpp_warning";

// One line per issue: "config.json key 'K': why". Empty when llama.cpp reads the model as is.
std::vector<std::string> llama_cpp_issues(const ModelDescription& desc, const GgufKvList& kvs);

// Throws Error naming `source`, each key and why, unless `force`; with `force` appends
// kLlamaCppWarningKey to `kvs` and returns the issue lines (for the caller's warnings).
std::vector<std::string> check_llama_cpp_compat(const ModelDescription& desc, const std::string& source, bool force,
                                                GgufKvList& kvs);

}  // namespace temper
