#include "modelfile.h"

#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json.h"
#include "tokenizer/chat_template.h"

namespace temper {
namespace {

// Ollama's Go templates for the chat-template families temper renders itself (`temper generate
// --chat`, runtime/tokenizer/chat_template.cpp). Each reproduces the model's Jinja template for
// system, user and assistant text messages, with the generation prompt at the end, given the
// data Ollama (>= 0.3) passes to a template that uses .Messages: every message, system ones
// included, in .Messages, and the system text again in .System. So they take the system text
// from .Messages only (using .System as well doubled it). What Go templates cannot do: trim
// message text (HF's Llama 3 and Gemma 3 templates |trim each message) and raise errors on
// conversations the Jinja template rejects. BOS is not written: llama-server adds it.
// tests/quantize/modelfile_test.cpp renders each one with Go's text/template as Ollama does.

// Llama 3.0: every message is a turn; the assistant header always follows.
const char* kLlama3Template = R"({{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

)";

// Llama 3.1 / 3.2 / 3.3: a system turn always, opening with the knowledge-cutoff lines, holding
// the first message when it is a system message; other messages are turns. @DATE@ is replaced.
const char* kLlama3DatedTemplate = R"(<|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: @DATE@

{{ with .Messages }}{{ if eq (index . 0).Role "system" }}{{ (index . 0).Content }}{{ end }}{{ end }}<|eot_id|>
{{- range $i, $_ := .Messages }}{{ if or $i (ne .Role "system") }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>

)";

// strftime_now("%d %b %Y") from Ollama's currentDate ("2006-01-02" layout, Ollama >= 0.11.1).
const char* kStrftimeDate =
    R"({{ $d := currentDate }}{{ slice $d 8 10 }} {{ $m := slice $d 5 7 }}{{ if eq $m "01" }}Jan)"
    R"({{ else if eq $m "02" }}Feb{{ else if eq $m "03" }}Mar{{ else if eq $m "04" }}Apr{{ else if eq $m "05" }}May)"
    R"({{ else if eq $m "06" }}Jun{{ else if eq $m "07" }}Jul{{ else if eq $m "08" }}Aug{{ else if eq $m "09" }}Sep)"
    R"({{ else if eq $m "10" }}Oct{{ else if eq $m "11" }}Nov{{ else }}Dec{{ end }} {{ slice $d 0 4 }})";

// ChatML (Qwen 3 without tools or thinking): every message is a turn.
const char* kChatmlTemplate = R"({{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
)";

// Gemma 3: no system turn; a first system message is put before the first user message.
const char* kGemma3Template = R"({{- range $i, $_ := .Messages }}{{ if or $i (ne .Role "system") }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}
{{ if and (eq $i 1) (eq (index $.Messages 0).Role "system") }}{{ (index $.Messages 0).Content }}

{{ end }}{{ .Content }}<end_of_turn>
{{ end }}{{ end }}<start_of_turn>model
)";

// No chat template: the texts one after another (as temper's plain renderer). Ollama appends
// {{ .Response }} and runs it once per user/assistant exchange.
const char* kPlainTemplate = "{{ .System }}{{ .Prompt }}";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// Llama 3.x's "Today Date": strftime_now where the template calls it (3.2; HF and llama.cpp
// define it), else the template's fixed date_string default (3.1: "26 Jul 2024").
std::string llama3_dated_template(const std::string& jinja) {
  std::string date = kStrftimeDate;
  const std::string key = "set date_string = \"";
  if (const size_t p = jinja.find(key); jinja.find("strftime_now") == std::string::npos && p != std::string::npos) {
    const size_t b = p + key.size(), e = jinja.find('"', b);
    if (e != std::string::npos && e - b < 40 && jinja.compare(b, e - b, "{{") != 0) date = jinja.substr(b, e - b);
  }
  return replace_all(kLlama3DatedTemplate, "@DATE@", date);
}

// Ollama >= 0.30 prefers the GGUF's Jinja template over a Go TEMPLATE that has fewer
// capabilities (server/images.go shouldPreferChatTemplate; tools and thinking detected as here).
bool jinja_has_tools_or_thinking(const std::string& jinja) {
  auto has = [&](const char* s) { return jinja.find(s) != std::string::npos; };
  return has("tools") || has("tool_call") || (has("<think>") && has("</think>"));
}

// temper's renderer family for `jinja`; nullopt for a template temper cannot render.
std::optional<ChatFamily> family_of(const std::string& jinja) {
  try {
    return detect_chat_family(jinja);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// The TEMPLATE for a family; "" for Gemma 4, which Ollama renders with its own code.
std::string go_template(ChatFamily family, const std::string& jinja) {
  switch (family) {
    case ChatFamily::kPlain: return kPlainTemplate;
    case ChatFamily::kLlama3: return kLlama3Template;
    case ChatFamily::kLlama3Dated: return llama3_dated_template(jinja);
    case ChatFamily::kChatML:
    case ChatFamily::kQwen3: return kChatmlTemplate;
    case ChatFamily::kGemma3: return kGemma3Template;
    case ChatFamily::kGemma4: break;
  }
  return "";
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string make_modelfile(const ModelDescription& desc, const std::string& from) {
  std::ostringstream mf;
  mf << "# Ollama Modelfile written by temper for " << desc.config.hf_architecture << "\n"
     << "# Import: ollama create <name> -f <this file>\n"
     << "FROM " << from << "\n\n";
  const std::string& jinja = desc.chat_template;
  const std::optional<ChatFamily> family = family_of(jinja);
  const std::string tpl = family ? go_template(*family, jinja) : "";
  if (family == ChatFamily::kGemma4) {
    mf << "# Chat template: none here. Ollama >= 0.20 renders Gemma 4 chats with its built-in gemma4\n"
       << "# renderer (set from general.architecture), which would take precedence over a TEMPLATE.\n";
  } else if (tpl.empty()) {
    mf << "# Chat template: none here. `ollama create` picks the closest of its built-in templates to\n"
       << "# the GGUF's (if one is close); otherwise Ollama >= 0.30 lets llama-server render the GGUF's\n"
       << "# Jinja template, and older Ollama passes prompts through as they are.\n";
  } else {
    if (family == ChatFamily::kPlain) mf << "# The model has no chat template: texts are passed on one after another.\n";
    if (family == ChatFamily::kLlama3Dated && tpl.find("currentDate") != std::string::npos)
      mf << "# Needs Ollama >= 0.11.1 (currentDate).\n";
    if (jinja_has_tools_or_thinking(jinja))
      mf << "# Ollama < 0.30 renders chats with this TEMPLATE. Ollama >= 0.30 prefers the GGUF's own\n"
         << "# chat template (llama-server renders it), which supports tools/thinking that this one lacks;\n"
         << "# OLLAMA_GO_TEMPLATE=1 makes it use this TEMPLATE.\n";
    mf << "TEMPLATE \"\"\"" << tpl << "\"\"\"\n";
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
