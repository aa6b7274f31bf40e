// GGUF metadata of a model in the order llama.cpp's converter writes it: general.architecture,
// the keys its tensor preparation writes (ArchSpec::gguf_write.tensor_keys), general.* (gguf-py
// metadata.py Metadata + ModelBase.prepare_metadata), the architecture's set_gguf_parameters
// (ArchSpec::gguf_write in runtime/model/arch/<id>.cpp), general.quantization_version, then
// set_vocab (also the arch file's, built from runtime/model/gguf_vocab.cpp).
#include "quantize/gguf_metadata.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <regex>
#include <set>

#include "core/error.h"
#include "model/gguf_kv.h"

namespace temper {

namespace {
using gguf_meta::Hparams;
using gguf_meta::KvList;
using gguf_meta::f32_of;
using gguf_meta::i32_of;
using gguf_meta::str_of;

bool is_lower_word(std::string_view w) {  // str.islower(): some cased char, none upper
  bool cased = false;
  for (char ch : w) {
    if (ch >= 'A' && ch <= 'Z') return false;
    if (ch >= 'a' && ch <= 'z') cased = true;
  }
  return cased;
}

std::string title_word(std::string_view w) {  // str.title() for ASCII
  std::string out(w);
  bool prev_cased = false;
  for (char& ch : out) {
    const bool lower = ch >= 'a' && ch <= 'z', upper = ch >= 'A' && ch <= 'Z';
    if (lower && !prev_cased) ch = char(ch - 'a' + 'A');
    else if (upper && prev_cased) ch = char(ch - 'A' + 'a');
    prev_cased = lower || upper;
  }
  return out;
}

// Metadata.id_to_title
std::string id_to_title(std::string s) {
  for (char& ch : s)
    if (ch == '-') ch = ' ';
  static const std::regex kKeep(R"(^(v\d+(?:\.\d+)*|\d.*)$)");
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace((unsigned char)s[j])) ++j;
    if (j > i) {
      std::string w = s.substr(i, j - i);
      if (!out.empty()) out += ' ';
      out += is_lower_word(w) && !std::regex_search(w, kKeep) ? title_word(w) : w;
    }
    i = j;
  }
  return out;
}

struct IdComponents {
  std::optional<std::string> full_name, org, basename, finetune, version, size_label;
};

std::string join_parts(const std::vector<std::string>& parts, const std::vector<std::set<std::string>>& types,
                       std::string_view type, bool dedupe = false, std::string_view exclude = {}) {
  std::string out;
  std::set<std::string> seen;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!types[i].count(std::string(type)) || (!exclude.empty() && types[i].count(std::string(exclude)))) continue;
    if (dedupe && !seen.insert(parts[i]).second) continue;
    if (!out.empty()) out += '-';
    out += parts[i];
  }
  return out;
}

// Metadata.get_model_id_components (ASCII names).
IdComponents model_id_components(const std::string& model_id, int64_t total_params) {
  IdComponents c;
  if (model_id.find(' ') != std::string::npos) {
    c.full_name = model_id;
    return c;
  }
  std::string name = model_id;
  if (size_t slash = model_id.find('/'); slash != std::string::npos) {
    c.org = model_id.substr(0, slash);
    name = model_id.substr(slash + 1);
    if (!c.org->empty() && (*c.org)[0] == '.') c.org.reset();
  }
  c.full_name = name;
  std::vector<std::string> parts;
  for (size_t i = 0, j; i <= name.size(); i = j + 1) {
    j = name.find('-', i);
    if (j == std::string::npos) j = name.size();
    if (j > i) parts.push_back(name.substr(i, j - i));
  }
  using std::regex_constants::icase;
  static const std::regex kVersion(R"((v|iter)?\d+([.]\d+)*)", icase);
  static const std::regex kType(R"(i?q\d(_\w)*|b?fp?(16|32))", icase);
  static const std::regex kSize(R"((([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl))", icase);
  static const std::regex kFinetune(R"(chat|instruct|vision|lora)", icase);
  std::vector<std::set<std::string>> types(parts.size());
  auto is_digit = [](char ch) { return ch >= '0' && ch <= '9'; };
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    if (std::regex_match(part, kVersion)) {
      types[i].insert("version");
    } else if (std::regex_match(part, kType)) {
      types[i].insert("type");
      for (char& ch : parts[i]) ch = char(std::toupper((unsigned char)ch));
    } else if (i > 0 && std::regex_match(part, kSize)) {
      for (char& ch : part)
        if (ch == '_') ch = '.';
      if (is_digit(part.back())) part = part.substr(0, part.size() - 2) + "." + part.back() + part[part.size() - 2];
      if (part.size() > 1 && is_digit(part[part.size() - 2]) && std::string_view("kmbt").find(part.back()) != std::string_view::npos)
        part.back() = char(std::toupper((unsigned char)part.back()));
      if (total_params > 0) {
        const size_t scale = std::string_view(" KMBT").find(part.back());
        char* end = nullptr;
        const std::string num = part.substr(0, part.size() - 1);
        const double v = std::strtod(num.c_str(), &end);
        if (!num.empty() && end == num.c_str() + num.size() && scale != std::string_view::npos) {
          const double label_params = v * std::pow(1000.0, double(scale));
          if (std::abs(label_params - double(total_params)) > double(7 * total_params / 8)) {
            types[i].insert("finetune");  // likely a context length
            part.back() = char(std::tolower((unsigned char)part.back()));
          }
        }
      }
      if (types[i].empty()) types[i].insert("size_label");
      parts[i] = part;
    } else if (i > 0 && std::regex_match(part, kFinetune)) {
      types[i].insert("finetune");
    }
  }
  auto has_digit = [&](const std::string& s) { return std::any_of(s.begin(), s.end(), is_digit); };
  bool numeric_size = false;
  for (size_t i = 0; i < parts.size(); ++i) numeric_size |= types[i].count("size_label") && has_digit(parts[i]);
  if (numeric_size)
    for (size_t i = 0; i < parts.size(); ++i)
      if (types[i].count("size_label") && std::all_of(parts[i].begin(), parts[i].end(), ::isalpha))
        types[i].erase("size_label");
  bool at_start = true;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (at_start && ((types[i].empty() && std::isalpha((unsigned char)parts[i][0])) || types[i].count("version"))) {
      types[i].insert("basename");
    } else {
      at_start = false;
      if (types[i].empty()) types[i].insert("finetune");
    }
  }
  for (size_t i = parts.size(); i-- > 0;) {
    if (types[i].count("basename") && types[i].size() > 1) types[i].erase("basename");
    else break;
  }
  auto opt = [](std::string s) { return s.empty() ? std::nullopt : std::optional<std::string>(std::move(s)); };
  c.basename = opt(join_parts(parts, types, "basename"));
  c.size_label = opt(join_parts(parts, types, "size_label", true));
  c.finetune = opt(join_parts(parts, types, "finetune"));
  c.version = opt(join_parts(parts, types, "version", false, "basename"));
  if (!c.size_label && !c.finetune && !c.version) c.basename.reset();
  return c;
}

// gguf-py utility.model_weight_count_rounded_notation(min_digits=2)
std::string rounded_count(double n) {
  double scaled;
  const char* suffix;
  if (n > 1e12) scaled = n * 1e-12, suffix = "T";
  else if (n > 1e9) scaled = n * 1e-9, suffix = "B";
  else if (n > 1e6) scaled = n * 1e-6, suffix = "M";
  else scaled = n * 1e-3, suffix = "K";
  const std::string whole = std::to_string(int64_t(std::nearbyint(scaled)));  // round-half-even
  const size_t sig = whole == "0" ? 0 : whole.size();
  const int fix = std::max(2 - int(sig), 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", fix, scaled, suffix);
  return buf;
}

// GGUFWriter.get_total_parameter_count + gguf.size_label, from the tensors the config implies
// as the converter writes them (tied output absent; generated rope_freqs, or LongRoPE's
// rope_factors_short and rope_factors_long).
std::string size_label_from_tensors(const ModelDescription& desc, int64_t* total_out) {
  if (!desc.arch) return "";
  int64_t total = 0, shared = 0, expert = 0, n_expert = 0;
  size_t rope_freqs = 0, rope_long = 0;
  for (const LayerConfig& l : desc.config.layers) {
    rope_freqs = std::max(rope_freqs, l.rope_freq_factors.size());
    rope_long = std::max(rope_long, l.rope_freq_factors_long.size());
  }
  total = shared = int64_t(rope_freqs + rope_long);
  for (const ExpectedTensor& t : expected_tensors(*desc.arch, desc.config)) {
    if (!t.required) continue;
    int64_t size = 1;
    for (int64_t d : t.shape) size *= d;
    total += size;
    if (t.expert >= 0) {
      const int64_t e = desc.config.layers.at(size_t(t.layer)).n_expert;
      if (t.expert == 0) expert += size, n_expert = e;
    } else if (t.gguf_name.find("_exps.") != std::string::npos && t.shape.size() >= 3) {
      expert += size / t.shape[0];
      n_expert = t.shape[0];
    } else {
      shared += size;
    }
  }
  *total_out = total;
  if (total <= 0) return "";
  if (n_expert > 0) return cat(n_expert, "x", rounded_count(double(shared + expert)));
  return rounded_count(double(total));
}

std::string folder_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Metadata.load (generation_config sampling keys, _name_or_path and folder-name heuristics;
// README model cards are not read) + Metadata.set_gguf_meta_model.
void add_general(KvList& kv, const ModelDescription& desc, const Hparams& hp, const std::string& arch) {
  kv.set("general.architecture", GgufValue::string(arch));
  kv.set("general.type", GgufValue::string("model"));
  if (!desc.generation_config_json.empty()) {
    const Json gen = parse_json(desc.generation_config_json, "generation_config.json");
    struct Sampling { const char* gen_key; const char* key; char type; };
    static const Sampling kSampling[] = {
        {"sequence", "general.sampling.sequence", 's'}, {"top_k", "general.sampling.top_k", 'i'},
        {"top_p", "general.sampling.top_p", 'f'}, {"min_p", "general.sampling.min_p", 'f'},
        {"xtc_probability", "general.sampling.xtc_probability", 'f'},
        {"xtc_threshold", "general.sampling.xtc_threshold", 'f'}, {"temperature", "general.sampling.temp", 'f'},
        {"penalty_last_n", "general.sampling.penalty_last_n", 'i'},
        {"penalty_repeat", "general.sampling.penalty_repeat", 'f'}, {"mirostat", "general.sampling.mirostat", 'i'},
        {"mirostat_tau", "general.sampling.mirostat_tau", 'f'}, {"mirostat_eta", "general.sampling.mirostat_eta", 'f'},
    };
    for (const Sampling& s : kSampling) {
      auto it = gen.find(s.gen_key);
      // penalty_repeat falls back to transformers' repetition_penalty
      if (it == gen.end() && std::string_view(s.gen_key) == "penalty_repeat") it = gen.find("repetition_penalty");
      if (it == gen.end() || it->is_null()) continue;
      const std::string what = cat("generation_config.json: ", s.gen_key);
      kv.set(s.key, s.type == 's' ? str_of(*it, what) : s.type == 'i' ? i32_of(*it, what) : f32_of(*it, what));
    }
  }

  int64_t total_params = 0;
  const std::string computed_size = size_label_from_tensors(desc, &total_params);
  std::optional<std::string> name, org, basename, finetune, version, size_label;
  auto absorb = [&](const IdComponents& c) {
    if (!name && c.full_name) name = id_to_title(*c.full_name);
    if (!org && c.org) org = id_to_title(*c.org);
    if (!basename) basename = c.basename;
    if (!finetune) finetune = c.finetune;
    if (!version) version = c.version;
    if (!size_label) size_label = c.size_label;
  };
  if (const Json* id = hp.raw().contains("_name_or_path") ? &hp.raw()["_name_or_path"] : nullptr; id && id->is_string()) {
    const std::string s = id->get<std::string>();
    if (std::count(s.begin(), s.end(), '/') <= 1) absorb(model_id_components(s, total_params));
  }
  const std::string folder = folder_name(desc.provenance.source);
  if (!folder.empty()) absorb(model_id_components(folder, total_params));
  if (!name) name = folder.empty() ? arch : folder;
  if (!size_label && !computed_size.empty()) size_label = computed_size;

  kv.set("general.name", GgufValue::string(*name));
  if (version) kv.set("general.version", GgufValue::string(*version));
  if (org) kv.set("general.organization", GgufValue::string(*org));
  if (finetune) kv.set("general.finetune", GgufValue::string(*finetune));
  if (basename) kv.set("general.basename", GgufValue::string(*basename));
  if (size_label) kv.set("general.size_label", GgufValue::string(*size_label));
}

// TextModel.__init__: rope_parameters (or rope_scaling), with the global keys mirrored in.
Json rope_parameters_of(const Hparams& hp) {
  Json rp = Json::object();
  if (auto it = hp.root().find("rope_parameters"); it != hp.root().end()) {
    if (it->is_object()) rp = *it;
  } else if (const Json* rs = hp.get("rope_scaling"); rs && rs->is_object()) {
    rp = *rs;
  }
  const Json* theta = hp.find({"global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"});
  const Json* local = hp.find({"local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta", "rope_local_base_freq"});
  const Json* partial = hp.find({"partial_rotary_factor", "rope_pct", "rope_percent"});
  const Json* orig = hp.find({"original_max_position_embeddings"});
  if (!rp.contains("full_attention") && !rp.contains("sliding_attention")) {
    if (local && !local->is_null()) rp["sliding_attention"] = Json{{"rope_theta", *local}};
    if (!rp.contains("rope_theta") && theta && !theta->is_null()) rp["rope_theta"] = *theta;
    if (!rp.contains("rope_type") && rp.contains("type") && !rp["type"].is_null()) rp["rope_type"] = rp["type"];
    if (!rp.contains("partial_rotary_factor") && partial && !partial->is_null()) rp["partial_rotary_factor"] = *partial;
    if (!rp.contains("original_max_position_embeddings") && orig && !orig->is_null())
      rp["original_max_position_embeddings"] = *orig;
  }
  return rp;
}

const ArchSpec& arch_of(const ModelDescription& desc) {
  TEMPER_CHECK(desc.arch && desc.arch->gguf_write.parameters && desc.arch->gguf_write.vocab,
               "GGUF export: architecture '", desc.arch ? desc.arch->id : "?", "' has no GGUF metadata rules");
  return *desc.arch;
}

}  // namespace

GgufKvList gguf_model_metadata(const ModelDescription& desc, FileType ftype) {
  const ArchSpec& arch = arch_of(desc);
  const Hparams hp(desc.config_json, cat(desc.provenance.source.empty() ? "" : desc.provenance.source + "/", "config.json"));
  KvList kv;
  gguf_meta::ArchKvContext c{desc, hp, rope_parameters_of(hp), std::string(arch.gguf_arch), uint32_t(ftype), kv};
  kv.set("general.architecture", GgufValue::string(c.arch));  // GGUFWriter's constructor
  if (arch.gguf_write.tensor_keys) arch.gguf_write.tensor_keys(c);  // ModelBase.prepare_tensors
  add_general(kv, desc, hp, c.arch);
  arch.gguf_write.parameters(c);
  kv.set("general.quantization_version", GgufValue::scalar<uint32_t>(2));  // GGML_QUANT_VERSION
  arch.gguf_write.vocab(c);
  return kv.take();
}

GgufKvList gguf_tokenizer_metadata(const ModelDescription& desc) {
  const ArchSpec& arch = arch_of(desc);
  const Hparams hp(desc.config_json, "config.json");
  KvList kv;
  gguf_meta::ArchKvContext c{desc, hp, rope_parameters_of(hp), std::string(arch.gguf_arch), uint32_t(FileType::kF32), kv};
  arch.gguf_write.vocab(c);
  GgufKvList all = kv.take();
  GgufKvList out;
  for (auto& [k, v] : all)
    if (k.starts_with("tokenizer.")) out.emplace_back(std::move(k), std::move(v));
  return out;
}

}  // namespace temper
