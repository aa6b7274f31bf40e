// Reads the non-tensor files of a Hugging Face folder into a ModelDescription: config.json
// (flattened and parsed by the architecture), generation_config.json, the chat template and
// the tokenizer assets.
#include "model/model_desc.h"

#include <map>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/json.h"
#include "core/sha256.h"

namespace temper {
namespace {

std::string join(const std::string& dir, std::string_view name) { return cat(dir, "/", name); }

// The "default" entry of a [{name, template}] list, as GGUFWriter.add_chat_template picks it.
std::string template_from_json(const Json& v, const std::string& path, std::string_view key) {
  if (v.is_string()) return v.get<std::string>();
  TEMPER_CHECK(v.is_array(), path, ": key '", key, "' must be a string or a list of {name, template}");
  for (const Json& e : v) {
    TEMPER_CHECK(e.is_object() && e.contains("name") && e.contains("template") && e["name"].is_string() &&
                     e["template"].is_string(),
                 path, ": key '", key, "' has an entry without string 'name' and 'template'");
    if (e["name"] == "default") return e["template"].get<std::string>();
  }
  return "";
}

}  // namespace

std::string load_chat_template(const std::string& dir) {
  const std::string tc_path = join(dir, "tokenizer_config.json");
  if (file_exists(tc_path)) {
    const Json tc = parse_json(read_text_file(tc_path), tc_path);
    if (tc.is_object())
      if (auto it = tc.find("chat_template"); it != tc.end() && !it->is_null())
        return template_from_json(*it, tc_path, "chat_template");
  }
  const std::string jinja = join(dir, "chat_template.jinja");
  if (file_exists(jinja)) return read_text_file(jinja);
  const std::string ct_path = join(dir, "chat_template.json");
  if (file_exists(ct_path)) {
    const Json ct = parse_json(read_text_file(ct_path), ct_path);
    if (ct.is_object())
      if (auto it = ct.find("chat_template"); it != ct.end() && !it->is_null())
        return template_from_json(*it, ct_path, "chat_template");
  }
  return "";
}

void validate_model(const ModelDescription& desc, std::span<const TensorInfo> tensors) {
  TEMPER_CHECK(desc.arch != nullptr, "model description has no architecture");
  const ArchSpec& arch = *desc.arch;
  validate_config(desc.config);
  std::map<std::string, const TensorInfo*, std::less<>> by_canonical;
  for (const TensorInfo& t : tensors)
    if (auto canon = arch.canonical_name(t.name); canon && !(arch.ignorable && arch.ignorable(desc.config, *canon)))
      by_canonical.emplace(*canon, &t);
  size_t matched = 0;
  for (const ExpectedTensor& e : expected_tensors(arch, desc.config)) {
    auto it = by_canonical.find(e.hf_name);
    if (it == by_canonical.end()) {
      TEMPER_CHECK(!e.required, "required tensor '", e.hf_name, "' (", shape_str(e.shape), ") is missing");
      continue;
    }
    const TensorInfo& t = *it->second;
    TEMPER_CHECK(t.shape == e.shape, "tensor '", escaped(t.name), "' has shape ", shape_str(t.shape),
                 ", but the config implies ", shape_str(e.shape));
    ++matched;
  }
  if (matched != by_canonical.size()) {
    std::map<std::string, bool, std::less<>> expected;
    for (const ExpectedTensor& e : expected_tensors(arch, desc.config)) expected.emplace(e.hf_name, true);
    for (const auto& [canon, t] : by_canonical)
      TEMPER_CHECK(expected.count(canon), "tensor '", escaped(t->name), "' is not part of the ", arch.id,
                   " architecture with this config");
  }
}

ModelDescription load_hf_description(const std::string& dir, std::span<const TensorInfo> tensors) {
  ModelDescription d;
  const std::string config_path = join(dir, "config.json");
  TEMPER_CHECK(file_exists(config_path), dir, ": no config.json (not a Hugging Face model folder?)");
  d.config_json = read_text_file(config_path);
  Json config = parse_json(d.config_json, config_path);
  TEMPER_CHECK(config.is_object(), config_path, ": expected a JSON object at the top level");

  const auto archs = config.find("architectures");
  TEMPER_CHECK(archs != config.end(), config_path, ": missing key 'architectures'");
  TEMPER_CHECK(archs->is_array() && !archs->empty() && (*archs)[0].is_string(), config_path,
               ": key 'architectures' must be a non-empty list of strings, got ", escaped(archs->dump()));
  const std::string hf_arch = (*archs)[0].get<std::string>();

  // llama.cpp's TextModel merges {**hparams, **text_config}: text_config wins.
  if (auto tc = config.find("text_config"); tc != config.end() && !tc->is_null()) {
    TEMPER_CHECK(tc->is_object(), config_path, ": key 'text_config' must be an object");
    const Json text = *tc;
    for (auto it = text.begin(); it != text.end(); ++it) config[it.key()] = *it;
  }

  try {
    d.arch = &find_arch_by_hf_name(hf_arch);
  } catch (const Error& e) {
    fail(config_path, ": ", escaped(e.what(), 2000));  // the name is the file's text
  }
  try {
    d.config = d.arch->parse_hf_config(config);
  } catch (const Error& e) {
    fail(config_path, ": ", e.what());
  }
  d.config.arch = std::string(d.arch->id);
  d.config.hf_architecture = hf_arch;
  if (!tensors.empty()) {
    try {
      validate_model(d, tensors);
    } catch (const Error& e) {
      fail(dir, ": ", e.what());
    }
  }

  const std::string gen_path = join(dir, "generation_config.json");
  if (file_exists(gen_path)) {
    d.generation_config_json = read_text_file(gen_path);
    TEMPER_CHECK(parse_json(d.generation_config_json, gen_path).is_object(), gen_path,
                 ": expected a JSON object at the top level");
  }
  d.chat_template = load_chat_template(dir);
  d.tokenizer = load_tokenizer_assets(dir, d.arch->id, d.config.n_vocab);

  d.provenance.source = canonical_path(dir);
  d.provenance.config_sha256 = sha256_hex(d.config_json);
  return d;
}

}  // namespace temper
