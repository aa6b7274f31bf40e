#include "modelfile.h"

#include <set>
#include <sstream>

#include "core/json.h"
#include "core/log.h"

namespace temper {
namespace {

// Ollama's Go templates for the families whose chat template we recognise. Ollama >= 0.30
// also renders the GGUF's embedded Jinja template itself; the Go template keeps older Ollama
// versions and `ollama show --template` correct.
const char* kLlama3Template =
    R"({{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

)";
const char* kChatmlTemplate =
    R"({{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
)";
const char* kGemma3Template =
    R"({{ range $i, $m := .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}
{{ if and $.System (eq $i 0) }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ end }}<start_of_turn>model
)";

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string make_modelfile(const ModelDescription& desc, const std::string& gguf_file_name) {
  std::ostringstream mf;
  mf << "# Ollama Modelfile written by temper for " << desc.config.hf_architecture << "\n"
     << "# Import: ollama create <name> -f <this file>\n"
     << "FROM ./" << gguf_file_name << "\n\n";
  const std::string& tpl = desc.chat_template;
  if (tpl.empty()) {
    mf << "# The model has no chat template: prompts are passed through as they are.\n"
       << "TEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n";
  } else if (tpl.find("<|start_header_id|>") != std::string::npos) {
    mf << "TEMPLATE \"\"\"" << kLlama3Template << "\"\"\"\n";
  } else if (tpl.find("<|im_start|>") != std::string::npos) {
    mf << "TEMPLATE \"\"\"" << kChatmlTemplate << "\"\"\"\n";
  } else if (tpl.find("<start_of_turn>") != std::string::npos) {
    mf << "TEMPLATE \"\"\"" << kGemma3Template << "\"\"\"\n";
  } else {
    mf << "# Chat template: the Jinja template embedded in the GGUF (tokenizer.chat_template),\n"
       << "# which Ollama >= 0.30 renders through llama.cpp.\n";
  }
  // Stop at every end-of-generation token.
  const auto& tok = desc.tokenizer;
  std::set<int32_t> stops(tok.eog_ids.begin(), tok.eog_ids.end());
  for (int32_t id : {tok.eos_id, tok.eot_id, tok.eom_id})
    if (id >= 0) stops.insert(id);
  for (int32_t id : stops)
    if (id >= 0 && size_t(id) < tok.tokens.size()) mf << "PARAMETER stop " << quoted(tok.tokens[size_t(id)]) << "\n";
  // Sampling defaults the model's authors ship.
  if (!desc.generation_config_json.empty()) {
    Json g = Json::parse(desc.generation_config_json, nullptr, false);
    if (g.is_object() && g.value("do_sample", true)) {
      for (auto [hf, ollama] : {std::pair{"temperature", "temperature"}, {"top_p", "top_p"}, {"top_k", "top_k"},
                                {"min_p", "min_p"}, {"repetition_penalty", "repeat_penalty"}})
        if (g.contains(hf) && g[hf].is_number()) mf << "PARAMETER " << ollama << " " << g[hf].dump() << "\n";
    }
  }
  return mf.str();
}

}  // namespace temper
