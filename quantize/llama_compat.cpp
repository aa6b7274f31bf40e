// See llama_compat.h. The rules themselves live with each architecture.
#include "quantize/llama_compat.h"

#include "core/error.h"
#include "model/arch.h"

namespace temper {

std::vector<std::string> llama_cpp_issues(const ModelDescription& desc, const GgufKvList& kvs) {
  if (!desc.arch || !desc.arch->llama_cpp_issues) return {};
  const GgufKvLookup lookup = [&](std::string_view key) -> const GgufValue* {
    for (const auto& [k, v] : kvs)
      if (k == key) return &v;
    return nullptr;
  };
  std::vector<std::string> lines;
  for (const LlamaCppIssue& i : desc.arch->llama_cpp_issues(desc.config, lookup))
    lines.push_back(cat("config.json key '", i.key, "': ", i.why));
  return lines;
}

std::vector<std::string> check_llama_cpp_compat(const ModelDescription& desc, const std::string& source, bool force,
                                                GgufKvList& kvs) {
  std::vector<std::string> lines = llama_cpp_issues(desc, kvs);
  if (lines.empty()) return lines;
  std::string all, one_line;
  for (const auto& l : lines) {
    all += (all.empty() ? "" : "\n") + l;
    one_line += (one_line.empty() ? "" : "; ") + l;
  }
  if (!force)
    fail(source, ": llama.cpp would misread or refuse this ", desc.arch->id, " model: ", one_line,
         ". --force writes it anyway, recording this in the GGUF key ", kLlamaCppWarningKey);
  kvs.emplace_back(kLlamaCppWarningKey, GgufValue::string(all));
  for (auto& l : lines) l = "llama.cpp will misread or refuse this GGUF: " + l;
  return lines;
}

}  // namespace temper
