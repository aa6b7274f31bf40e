// ModelDescription: everything about a model except its tensors, read from a Hugging Face
// folder (config.json, generation_config.json, tokenizer files, chat template) or from a
// temper checkpoint.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "formats/tensor_source.h"

#include "model/arch.h"
#include "model/config.h"
#include "model/tokenizer_assets.h"

namespace temper {

struct Provenance {
  std::string source;                   // the folder or file converted
  std::vector<std::string> files;       // checkpoint files read (names relative to source)
  std::string config_sha256;            // of config.json as read
  std::string converter;                // "temper 0.1.0"
  std::string created_utc;              // ISO 8601
};

struct ModelDescription {
  const ArchSpec* arch = nullptr;
  ModelConfig config;
  std::string config_json;              // config.json text as read
  std::string generation_config_json;   // "" when absent
  TokenizerAssets tokenizer;
  std::string chat_template;            // Jinja source ("" when none)
  Provenance provenance;
};

// Parses the non-tensor files of a HF folder. config.json's `text_config` is merged into the
// root (as llama.cpp's converter does) before the architecture parses it. With `tensors` (the
// folder's safetensors), the config is checked against them (validate_model) before the
// tokenizer is read, so that a vocab_size the embedding does not have fails at once instead
// of padding the vocabulary to it. Throws Error naming the file and key at fault.
ModelDescription load_hf_description(const std::string& dir, std::span<const TensorInfo> tensors = {});

// The one check of a model's config and tensor shapes, shared by every command that reads a
// model (convert, quantize, inspect, eval...): validate_config, then every tensor the config
// implies is present when required and has exactly the implied shape, and every tensor of the
// text model is one the config implies. Tensors are matched by canonical HF name
// (arch->canonical_name). Throws Error naming the key or tensor; callers add the file.
void validate_model(const ModelDescription& desc, std::span<const TensorInfo> tensors);

// Chat template precedence of llama.cpp's converter: tokenizer_config.json "chat_template"
// (string, or the "default" entry of a list), else chat_template.jinja, else
// chat_template.json. Returns "" if none.
std::string load_chat_template(const std::string& dir);

}  // namespace temper
