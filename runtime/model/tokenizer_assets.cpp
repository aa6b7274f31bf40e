// Builds TokenizerAssets the way llama.cpp's converter builds tokenizer.ggml.* (conversion/
// base.py _create_vocab_sentencepiece / get_vocab_base, gguf-py vocab.py LlamaHfVocab and
// SpecialVocab), without running a tokenizer: everything comes from the files themselves.
#include "model/tokenizer_assets.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "model/sentencepiece_model.h"

namespace temper {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
};

// The JSON side files of a folder; null Json when a file is absent.
struct Sources {
  std::string dir;
  Json tokenizer, tokenizer_config, config, generation_config;
  int64_t max_vocab = 0;  // load_tokenizer_assets(max_vocab); 0 = no bound
  std::string path(std::string_view name) const { return cat(dir, "/", name); }
};

Json load_json_if_present(const std::string& path, std::string* raw = nullptr) {
  if (!file_exists(path)) return Json();
  std::string text = read_text_file(path);
  Json j = parse_json(text, path);
  TEMPER_CHECK(j.is_object(), path, ": expected a JSON object at the top level");
  if (raw) *raw = std::move(text);
  return j;
}

// obj[key] when present and not null, else nullptr.
const Json* find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// config.json value, with text_config winning (llama.cpp merges {**root, **text_config}).
const Json* config_value(const Json& config, std::string_view key) {
  if (const Json* tc = find(config, "text_config"))
    if (const Json* v = find(*tc, key)) return v;
  return find(config, key);
}

std::optional<bool> optional_bool(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  return v && v->is_boolean() ? std::optional<bool>(v->get<bool>()) : std::nullopt;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

bool starts_ends(std::string_view t, std::string_view a, std::string_view b) {
  return t.size() >= a.size() + b.size() && t.starts_with(a) && t.ends_with(b);
}

// TextModel.does_token_look_special: added tokens some models forget to mark special.
bool looks_special(std::string_view t) {
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || starts_ends(t, "<|", "|>") ||
         starts_ends(t, "<\xEF\xBD\x9C", "\xEF\xBD\x9C>") /* <｜…｜> */ || starts_ends(t, "<unused", ">");
}

bool is_byte_token(std::string_view t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.starts_with("<0x") && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// Type of an added token in get_vocab_base / _create_vocab_sentencepiece; user-defined tokens
// are pre-normalized ("▁" -> " ") because llama.cpp matches them against raw text.
void set_added_token(TokenizerAssets& t, int32_t id, const std::string& content, bool special, float score) {
  if (special || looks_special(content)) {
    t.token_types[id] = int32_t(TokenType::kControl);
    t.tokens[id] = content;
  } else {
    t.token_types[id] = int32_t(TokenType::kUserDefined);
    t.tokens[id] = replace_all(content, kSpaceMarker, " ");
  }
  t.scores[id] = score;
}

// Refuses a vocabulary of n tokens that the model's embedding cannot hold, before padding to n
// allocates anything: a stray id near 2^30 would otherwise cost gigabytes and minutes.
void check_vocab_fits(const Sources& s, int64_t n, std::string_view file, std::string_view why) {
  TEMPER_CHECK(s.max_vocab <= 0 || n <= s.max_vocab, s.path(file), ": ", why, " makes a vocabulary of ", n,
               " tokens, but the model has ", s.max_vocab, " (config vocab_size, the embedding's rows)");
}

void resize_with_padding(TokenizerAssets& t, size_t n, float pad_score) {
  t.tokens.resize(n);
  t.scores.assign(n, pad_score);
  t.token_types.assign(n, int32_t(TokenType::kUnused));
  for (size_t i = 0; i < n; ++i) t.tokens[i] = cat("[PAD", i, "]");
}

int32_t config_vocab_size(const Sources& s) {
  const Json* v = config_value(s.config, "vocab_size");
  if (!v) return -1;
  TEMPER_CHECK(v->is_number_integer() && v->get<int64_t>() > 0 && v->get<int64_t>() < (1 << 30),
               s.path("config.json"), ": key 'vocab_size' must be a positive integer");
  return v->get<int32_t>();
}

// tokenizer.json "added_tokens", in file order.
std::vector<AddedToken> read_added_tokens(const Sources& s) {
  std::vector<AddedToken> out;
  const Json* list = find(s.tokenizer, "added_tokens");
  if (!list) return out;
  const std::string path = s.path("tokenizer.json");
  TEMPER_CHECK(list->is_array(), path, ": key 'added_tokens' must be a list");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& a = (*list)[i];
    const Json* id = find(a, "id");
    const Json* content = find(a, "content");
    TEMPER_CHECK(id && id->is_number_integer() && id->get<int64_t>() >= 0 && id->get<int64_t>() < (1 << 30) &&
                     content && content->is_string(),
                 path, ": added_tokens[", i, "] needs an integer 'id' >= 0 and a string 'content'");
    const Json* special = find(a, "special");
    out.push_back({id->get<int32_t>(), content->get<std::string>(), special && special->is_boolean() && special->get<bool>()});
  }
  return out;
}

// Ollama's pre-tokenizer detection: sha256 over the concatenated Split regexes.
std::string bpe_pre_name(const Sources& s) {
  Sha256 h;
  if (const Json* pre = find(s.tokenizer, "pre_tokenizer"))
    if (const Json* list = find(*pre, "pretokenizers"); list && list->is_array())
      for (const Json& p : *list) {
        const Json* type = find(p, "type");
        const Json* pattern = find(p, "pattern");
        const Json* regex = pattern ? find(*pattern, "Regex") : nullptr;
        if (type && *type == "Split" && regex && regex->is_string()) {
          const std::string r = regex->get<std::string>();
          h.update(r.data(), r.size());
        }
      }
  const std::string digest = h.hex_digest();
  static const std::pair<std::string_view, std::string_view> kKnown[] = {
      {"d98f9631be1e9607a9848c26c1f9eac1aa9fc21ac6ba82a2fc0741af9780a48f", "llama-bpe"},
      {"1ff7f41064896984db5d1bb6ff64fa4bc29007d08c1b439e505b7392777a319e", "qwen2"},
      {"03df5c5863ad70781dcfdef491ead25140f895fe8010964be0daefe27be32b02", "deepseek-llm"},
      {"21cde974d587f0d54dc8d56b183cc1e6239600172035c68fbd6d4b9f8da0576e", "deepseek-coder"},
      {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "default"},  // no Split regex
  };
  for (auto [hash, name] : kKnown)
    if (digest == hash) return std::string(name);
  fail(s.path("tokenizer.json"), ": unknown BPE pre-tokenizer (sha256 of its Split regexes is ", digest,
       "); llama.cpp would refuse it too: add the hash and its llama.cpp pre name to the table");
}

std::vector<std::string> read_merges(const Sources& s) {
  std::vector<std::string> out;
  const Json* model = find(s.tokenizer, "model");
  const Json* merges = model ? find(*model, "merges") : nullptr;
  if (!merges) return out;
  const std::string path = s.path("tokenizer.json");
  TEMPER_CHECK(merges->is_array(), path, ": key 'model.merges' must be a list");
  out.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& m = (*merges)[i];
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      // transformers >= 4.45 pairs; SpecialVocab joins them and writes inner spaces as U+0120.
      out.push_back(replace_all(m[0].get<std::string>(), " ", "\xC4\xA0") + " " +
                    replace_all(m[1].get<std::string>(), " ", "\xC4\xA0"));
    } else {
      fail(path, ": model.merges[", i, "] is neither a string nor a pair of strings");
    }
  }
  return out;
}

bool normalizer_prepends_space(const Json& n) {
  const Json* type = find(n, "type");
  if (!type || !type->is_string()) return false;
  if (*type == "Prepend") return find(n, "prepend") && *find(n, "prepend") == std::string(kSpaceMarker);
  if (*type == "Sequence")
    if (const Json* list = find(n, "normalizers"); list && list->is_array())
      return std::any_of(list->begin(), list->end(), normalizer_prepends_space);
  return false;
}

void load_sentencepiece(TokenizerAssets& t, const Sources& s, const SentencePieceModel& sp) {
  t.kind = "sentencepiece";
  t.gguf_model = "llama";
  t.gguf_pre = "default";
  const int32_t cfg_n = config_vocab_size(s);
  const size_t n = cfg_n > 0 ? size_t(cfg_n) : sp.pieces.size();
  check_vocab_fits(s, int64_t(n), cfg_n > 0 ? "config.json" : "tokenizer.model",
                   cfg_n > 0 ? "vocab_size" : "the number of pieces");
  if (n < sp.pieces.size())
    warn(s.path("config.json"), ": vocab_size ", n, " < ", sp.pieces.size(), " SentencePiece pieces; ignoring the rest");
  resize_with_padding(t, n, -10000.0f);
  for (size_t i = 0; i < std::min(n, sp.pieces.size()); ++i) {
    const auto& p = sp.pieces[i];
    t.tokens[i] = p.piece;
    t.scores[i] = p.score;
    // The converter asks IsUnknown/IsControl/IsUnused/IsByte; user-defined pieces stay NORMAL.
    t.token_types[i] = p.type == 4 ? int32_t(TokenType::kNormal) : p.type;
  }
  const std::string added_path = s.path("added_tokens.json");
  const Json added = load_json_if_present(added_path);
  for (auto it = added.begin(); added.is_object() && it != added.end(); ++it) {
    TEMPER_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0, added_path, ": key '", escaped(it.key()),
                 "' must map to a token id >= 0");
    const int64_t id = it->get<int64_t>();
    if (id >= int64_t(n)) continue;
    t.tokens[id] = it.key();
    t.scores[id] = -1000.0f;
    t.token_types[id] = int32_t(TokenType::kUserDefined);
  }
  if (const Json* dec = find(s.tokenizer_config, "added_tokens_decoder")) {
    const std::string path = s.path("tokenizer_config.json");
    TEMPER_CHECK(dec->is_object(), path, ": key 'added_tokens_decoder' must be an object");
    for (auto it = dec->begin(); it != dec->end(); ++it) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) id = -1;
      } catch (const std::exception&) {
      }
      const Json* content = find(*it, "content");
      TEMPER_CHECK(id >= 0 && content && content->is_string(), path, ": added_tokens_decoder entry '", escaped(it.key()),
                   "' needs an integer key and a string 'content'");
      if (id >= int64_t(n)) continue;
      set_added_token(t, int32_t(id), content->get<std::string>(), optional_bool(*it, "special").value_or(false),
                      -1000.0f);
    }
  }
}

void load_hf_bpe(TokenizerAssets& t, const Sources& s, const std::vector<AddedToken>& added, bool gemma4) {
  const std::string path = s.path("tokenizer.json");
  const Json* model = find(s.tokenizer, "model");
  TEMPER_CHECK(model && model->is_object(), path, ": missing object 'model'");
  const Json* type = find(*model, "type");
  TEMPER_CHECK(type && type->is_string(), path, ": missing string 'model.type'");
  TEMPER_CHECK(*type == "BPE", path, ": tokenizer model type '", escaped(type->get<std::string>()),
               "' is not supported (only BPE, or a tokenizer.model SentencePiece file)");
  const Json* vocab = find(*model, "vocab");
  TEMPER_CHECK(vocab && vocab->is_object(), path, ": 'model.vocab' must be an object {token: id}");
  const bool byte_fallback = optional_bool(*model, "byte_fallback").value_or(false);
  TEMPER_CHECK(!gemma4 || byte_fallback, path, ": Gemma 4 needs a BPE tokenizer with byte_fallback");

  t.kind = "bpe";
  if (gemma4) {
    t.gguf_model = "gemma4";  // no pre: the loader forces "gemma4"
  } else if (byte_fallback) {
    t.gguf_model = "llama";  // LlamaHfVocab: SentencePiece-style BPE
    t.gguf_pre = "default";
  } else {
    t.gguf_model = "gpt2";
    t.gguf_pre = bpe_pre_name(s);
  }

  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    TEMPER_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() < (1 << 30), path,
                 ": model.vocab['", escaped(it.key()), "'] must be a token id >= 0");
    max_id = std::max<int64_t>(max_id, it->get<int64_t>());
  }
  for (const auto& a : added) max_id = std::max<int64_t>(max_id, a.id);
  check_vocab_fits(s, max_id + 1, "tokenizer.json", cat("token id ", max_id));
  size_t n = size_t(max_id + 1);
  if (t.gguf_model == "gpt2") {  // get_vocab_base walks range(config vocab_size)
    const int32_t cfg_n = config_vocab_size(s);
    if (cfg_n > 0) {
      TEMPER_CHECK(max_id < cfg_n, s.path("config.json"), ": vocab_size ", cfg_n, " but ", path, " has token id ", max_id);
      check_vocab_fits(s, cfg_n, "config.json", "vocab_size");
      n = size_t(cfg_n);
    }
  }
  // LlamaHfVocab scores every token -1000; llama.cpp writes no scores for gpt2 (0 on load).
  const float score = t.gguf_model == "gpt2" ? 0.0f : -1000.0f;
  resize_with_padding(t, n, score);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const int64_t id = it->get<int64_t>();
    t.tokens[id] = it.key();
    t.scores[id] = score;
    t.token_types[id] = int32_t(byte_fallback && is_byte_token(it.key()) ? TokenType::kByte : TokenType::kNormal);
  }
  for (const auto& a : added) set_added_token(t, a.id, a.content, a.special, score);
  if (gemma4) {  // Gemma4Model.set_vocab: always rendered, so the chat parser can read them
    for (std::string_view v : {"<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool_response>",
                               "<tool_response|>", "<|\"|>"})
      for (size_t i = 0; i < n; ++i)
        if (t.tokens[i] == v) t.token_types[i] = int32_t(TokenType::kUserDefined);
  }
  if (t.gguf_model != "llama") t.merges = read_merges(s);
}

std::optional<std::string> token_string(const Json& tokenizer_config, std::string_view key) {
  const Json* v = find(tokenizer_config, key);
  if (v && v->is_string()) return v->get<std::string>();
  if (const Json* c = v && v->is_object() ? find(*v, "content") : nullptr; c && c->is_string())
    return c->get<std::string>();
  return std::nullopt;
}

std::optional<std::string> template_special(const Json& entry) {
  const Json* st = find(entry, "SpecialToken");
  const Json* id = st ? find(*st, "id") : nullptr;
  return id && id->is_string() ? std::optional<std::string>(id->get<std::string>()) : std::nullopt;
}

// SpecialVocab: ids from tokenizer_config.json token strings, the TemplateProcessing
// post-processor and config.json; then SentencePiece's own ids; eot/eom by their text.
void resolve_special_tokens(TokenizerAssets& t, const Sources& s, const std::vector<AddedToken>& added,
                            const SentencePieceModel* sp, std::string_view arch_id) {
  const int64_t n = int64_t(t.tokens.size());
  const Json& tc = s.tokenizer_config;
  const bool has_tc = !tc.is_null();
  // Text -> id: added tokens first (SpecialVocab looks only there), then the vocabulary.
  std::unordered_map<std::string, int32_t> ids;
  for (const auto& a : added) ids.emplace(a.content, a.id);
  if (const Json* dec = find(tc, "added_tokens_decoder"); dec && dec->is_object())
    for (auto it = dec->begin(); it != dec->end(); ++it)
      if (const Json* c = find(*it, "content"); c && c->is_string() && !it.key().empty() && it.key().size() < 10 &&
                                                 std::all_of(it.key().begin(), it.key().end(), ::isdigit))
        ids.emplace(c->get<std::string>(), int32_t(std::stol(it.key())));
  for (int64_t i = 0; i < n; ++i) ids.emplace(t.tokens[i], int32_t(i));
  auto lookup = [&](const std::optional<std::string>& text) -> int64_t {
    if (!text) return -1;
    auto it = ids.find(*text);
    return it == ids.end() ? -1 : it->second;
  };

  std::optional<std::string> bos = token_string(tc, "bos_token"), eos = token_string(tc, "eos_token");
  const std::optional<std::string> cls = token_string(tc, "cls_token"), sep = token_string(tc, "sep_token");
  if ((!bos || bos->empty()) && cls) bos = cls;
  if ((!eos || eos->empty()) && sep) eos = sep;
  std::optional<bool> add_bos, add_eos;
  std::optional<std::string> eot;
  if (const Json* pp = find(s.tokenizer, "post_processor")) {
    std::vector<const Json*> procs;
    if (const Json* list = find(*pp, "processors"); list && list->is_array())
      for (const Json& p : *list) procs.push_back(&p);
    else
      procs.push_back(pp);
    for (const Json* p : procs) {
      const Json* type = find(*p, "type");
      if (type && *type == "RobertaProcessing") add_bos = add_eos = true;
      const Json* single = find(*p, "single");
      if (!type || *type != "TemplateProcessing" || !single || !single->is_array() || single->size() < 2) continue;
      if (auto first = template_special(single->front())) {
        if (!has_tc) bos = first;
        add_bos = first == bos || first == cls;
      }
      if (auto last = template_special(single->back())) {
        if (!has_tc) eos = last;
        else if (last != eos) eot = eos, eos = last;  // the old eos becomes the eot token
        add_eos = true;
      }
    }
  }
  if (auto v = optional_bool(tc, "add_bos_token")) add_bos = v;
  if (auto v = optional_bool(tc, "add_eos_token")) add_eos = v;

  auto set = [&](int32_t& slot, int64_t id) {
    if (slot < 0 && id >= 0 && id < n) slot = int32_t(id);
  };
  set(t.bos_id, lookup(bos));
  set(t.eos_id, lookup(eos));
  set(t.unk_id, lookup(token_string(tc, "unk_token")));
  set(t.pad_id, lookup(token_string(tc, "pad_token")));
  set(t.eot_id, lookup(eot));
  const std::pair<const char*, int32_t*> config_ids[] = {
      {"bos_token_id", &t.bos_id}, {"eos_token_id", &t.eos_id}, {"unk_token_id", &t.unk_id}, {"pad_token_id", &t.pad_id}};
  for (auto [key, slot] : config_ids) {  // root first, then text_config; lists are ignored
    const Json* v = find(s.config, key);
    if (const Json* text = find(s.config, "text_config"); !v && text) v = find(*text, key);
    if (v && v->is_number_integer()) set(*slot, v->get<int64_t>());
  }
  if (sp) {
    set(t.unk_id, sp->unk_id);
    set(t.bos_id, sp->bos_id);
    set(t.eos_id, sp->eos_id);
    set(t.pad_id, sp->pad_id);
  }
  for (const char* text : {"<|eot_id|>", "<end_of_turn>", "<turn|>", "<|im_end|>"}) set(t.eot_id, lookup(text));
  set(t.eom_id, lookup("<|eom_id|>"));

  auto add_eog = [&](int64_t id) {
    if (id >= 0 && id < n && std::find(t.eog_ids.begin(), t.eog_ids.end(), id) == t.eog_ids.end())
      t.eog_ids.push_back(int32_t(id));
  };
  auto add_eog_json = [&](const Json* v) {
    if (v && v->is_number_integer()) add_eog(v->get<int64_t>());
    if (v && v->is_array())
      for (const Json& e : *v)
        if (e.is_number_integer()) add_eog(e.get<int64_t>());
  };
  add_eog(t.eos_id);
  add_eog(t.eot_id);
  add_eog(t.eom_id);
  add_eog_json(config_value(s.config, "eos_token_id"));
  add_eog_json(find(s.generation_config, "eos_token_id"));

  const bool gemma = arch_id.starts_with("gemma");
  t.add_bos = arch_id == "gemma4" || add_bos.value_or(t.gguf_model == "llama" || t.gguf_pre == "llama-bpe");
  t.add_eos = add_eos.value_or(false);
  if (gemma) t.add_space_prefix = false;
  else if (auto v = optional_bool(tc, "add_prefix_space")) t.add_space_prefix = *v;
  else if (sp) t.add_space_prefix = sp->add_dummy_prefix;
  else if (const Json* norm = find(s.tokenizer, "normalizer"); norm && t.gguf_model == "llama")
    t.add_space_prefix = normalizer_prepends_space(*norm);
}

}  // namespace

TokenizerAssets load_tokenizer_assets(const std::string& dir, std::string_view arch_id, int64_t max_vocab) {
  TokenizerAssets t;
  Sources s;
  s.dir = dir;
  s.max_vocab = max_vocab;
  const bool gemma4 = arch_id == "gemma4";
  s.tokenizer = load_json_if_present(s.path("tokenizer.json"), &t.tokenizer_json);
  s.tokenizer_config = load_json_if_present(s.path("tokenizer_config.json"), &t.tokenizer_config_json);
  s.config = load_json_if_present(s.path("config.json"));
  s.generation_config = load_json_if_present(s.path("generation_config.json"));
  load_json_if_present(s.path("special_tokens_map.json"), &t.special_tokens_map_json);

  const std::string model_path = s.path("tokenizer.model");
  const bool use_sp = file_exists(model_path) && !gemma4;
  TEMPER_CHECK(use_sp || !s.tokenizer.is_null(), dir, ": no tokenizer: need tokenizer.json",
               gemma4 ? " (Gemma 4 reads only tokenizer.json)" : " or tokenizer.model");
  if (file_exists(model_path)) t.tokenizer_model = read_text_file(model_path);

  const std::vector<AddedToken> added = read_added_tokens(s);
  std::optional<SentencePieceModel> sp;
  if (use_sp) {
    sp = parse_sentencepiece_model(t.tokenizer_model, model_path);
    load_sentencepiece(t, s, *sp);
  } else {
    load_hf_bpe(t, s, added, gemma4);
  }
  resolve_special_tokens(t, s, added, sp ? &*sp : nullptr, arch_id);
  return t;
}

}  // namespace temper
