// tokenizer.ggml.* keys as llama.cpp's converter writes them: the vocabulary paths of
// conversion/base.py (_set_vocab_sentencepiece, _set_vocab_llama_hf, _set_vocab_gpt2),
// gemma.py Gemma4Model.set_vocab, and gguf-py vocab.py SpecialVocab / LlamaHfVocab, restated
// over the raw files kept in TokenizerAssets (no tokenizer library is run).
#include <algorithm>
#include <cstdlib>
#include <optional>
#include <regex>
#include <unordered_map>

#include "core/error.h"
#include "model/gguf_kv.h"

namespace temper::gguf_meta {
namespace {

Json value_or_null(const Json& obj, std::string_view key) {
  const Json* v = get_in(obj, key);
  return v ? *v : Json();
}

Json parse_if_present(const std::string& text, const char* name) {
  if (text.empty()) return Json();
  Json j = parse_json(text, name);
  TEMPER_CHECK(j.is_object(), name, ": expected a JSON object at the top level");
  return j;
}

// "x in (a, b)" on parsed JSON values (a str never equals a dict or None).
bool in2(const Json& x, const Json& a, const Json& b) { return x == a || x == b; }

// processor['single'][i].get('SpecialToken', {}).get('id')
Json template_special_id(const Json& entry) {
  const Json* st = get_in(entry, "SpecialToken");
  return st ? value_or_null(*st, "id") : Json();
}

// gguf-py vocab.py SpecialVocab: special token ids, add_*_token flags, merges, chat template
// and normalizer flags, from tokenizer.json, tokenizer_config.json and config.json.
class SpecialVocab {
 public:
  SpecialVocab(const ModelDescription& desc, bool load_merges, std::optional<size_t> n_vocab)
      : n_vocab_(n_vocab) {
    const TokenizerAssets& t = desc.tokenizer;
    const Json tok = parse_if_present(t.tokenizer_json, "tokenizer.json");
    Json tc = parse_if_present(t.tokenizer_config_json, "tokenizer_config.json");
    load_from_tokenizer_json(desc, tok, tc, load_merges);
    load_from_config_json(parse_json(desc.config_json, "config.json"));
  }

  void add_to(KvList& kv) const {
    if (!merges_.empty()) kv.set("tokenizer.ggml.merges", GgufValue::string_array(merges_));
    static const std::unordered_map<std::string, std::string> kIdKey = {
        {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
        {"pad", "padding_token_id"}, {"mask", "mask_token_id"}, {"eot", "eot_token_id"}, {"eom", "eom_token_id"}};
    for (const auto& [typ, id] : ids_)  // cls has no GGUF key (no add_cls_token_id handler)
      if (auto it = kIdKey.find(typ); it != kIdKey.end())
        kv.set("tokenizer.ggml." + it->second, GgufValue::scalar<uint32_t>(id));
    for (const auto& [typ, on] : add_)
      if (typ == "bos" || typ == "eos" || typ == "sep")
        kv.set("tokenizer.ggml.add_" + typ + "_token", GgufValue::scalar<bool>(on));
    add_chat_template(kv);
    if (lowercase_) kv.set("tokenizer.ggml.normalizer.lowercase", GgufValue::scalar<bool>(*lowercase_));
    if (strip_accents_) kv.set("tokenizer.ggml.normalizer.strip_accents", GgufValue::scalar<bool>(*strip_accents_));
  }

 private:
  void set_add(const std::string& typ, bool on) {
    for (auto& [k, v] : add_)
      if (k == typ) return void(v = on);
    add_.emplace_back(typ, on);
  }

  // _set_special_token. A negative id makes the converter raise; it is skipped here.
  void set_special(const std::string& typ, const Json& tid) {
    if (!tid.is_number_integer() || tid.get<int64_t>() < 0 || tid.get<int64_t>() > int64_t(UINT32_MAX)) return;
    const int64_t id = tid.get<int64_t>();
    if (n_vocab_ && id >= int64_t(*n_vocab_)) return;
    for (const auto& [k, v] : ids_)
      if (k == typ) return;
    ids_.emplace_back(typ, uint32_t(id));
  }

  void parse_normalizer(const Json& n) {
    const Json type = value_or_null(n, "type");
    if (type == "Lowercase") lowercase_ = true;
    else if (type == "StripAccents") strip_accents_ = true;
    else if (type == "BertNormalizer") {
      if (const Json* v = get_in(n, "lowercase"); v && v->is_boolean()) lowercase_ = v->get<bool>();
      if (const Json* v = get_in(n, "strip_accents"); v && v->is_boolean()) strip_accents_ = v->get<bool>();
    } else if (type == "Sequence") {
      if (const Json* list = get_in(n, "normalizers"); list && list->is_array())
        for (const Json& e : *list) parse_normalizer(e);
    }
  }

  void load_merges_from(const Json& tok) {
    const Json* model = get_in(tok, "model");
    const Json* merges = model ? get_in(*model, "merges") : nullptr;
    if (!merges || !merges->is_array() || merges->empty()) return;
    const Json& first = (*merges)[0];
    for (const Json& m : *merges) {
      if (first.is_string()) {
        TEMPER_CHECK(m.is_string(), "tokenizer.json: model.merges mixes strings and pairs");
        merges_.push_back(m.get<std::string>());
      } else {
        TEMPER_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                     "tokenizer.json: unknown model.merges format (want \"a b\" strings or [a, b] pairs)");
        auto enc = [](std::string s) {  // a space inside a part becomes chr(ord(' ') + 256)
          std::string out;
          for (char ch : s) out += ch == ' ' ? std::string("\xC4\xA0") : std::string(1, ch);
          return out;
        };
        merges_.push_back(enc(m[0].get<std::string>()) + " " + enc(m[1].get<std::string>()));
      }
    }
  }

  void load_from_tokenizer_json(const ModelDescription& desc, const Json& tok, Json& tc, bool load_merges) {
    Json added_tokens = Json::array();
    if (!tok.is_null()) {
      if (load_merges) load_merges_from(tok);
      if (const Json* n = get_in(tok, "normalizer"); n && truthy(*n)) parse_normalizer(*n);
      if (const Json* a = get_in(tok, "added_tokens"); a && a->is_array()) added_tokens = *a;
    }
    if (truthy(tok)) template_processing(tok, tc);
    if (!truthy(tc)) return;
    load_chat_template(desc, tc);
    for (size_t i = 0; i < types_.size(); ++i) {
      const std::string typ = types_[i];
      if (const Json* a = get_in(tc, "add_" + typ + "_token"); a && a->is_boolean()) set_add(typ, a->get<bool>());
      const Json entry = value_or_null(tc, typ + "_token");
      Json content;
      if (entry.is_string()) content = entry;
      else if (const Json* c = get_in(entry, "content"); c && c->is_string()) content = *c;
      else continue;
      for (const Json& atok : added_tokens)  // only the first match
        if (value_or_null(atok, "content") == content) {
          set_special(typ, value_or_null(atok, "id"));
          break;
        }
    }
  }

  // The post_processor part of _try_load_from_tokenizer_json (RobertaProcessing and the
  // "crude" TemplateProcessing parse), including its edits of tokenizer_config.
  void template_processing(const Json& tok, Json& tc) {
    const bool has_tc = truthy(tc);
    Json bos = value_or_null(tc, "bos_token"), cls = value_or_null(tc, "cls_token");
    Json eos = value_or_null(tc, "eos_token"), sep = value_or_null(tc, "sep_token");
    if (!truthy(bos) && truthy(cls) && has_tc) tc["bos_token"] = bos = cls;
    if (!truthy(eos) && truthy(sep) && has_tc) tc["eos_token"] = eos = sep;
    const Json* pp = get_in(tok, "post_processor");
    if (!pp || !truthy(*pp)) return;
    const Json procs = pp->contains("processors") ? (*pp)["processors"] : Json::array({*pp});
    for (const Json& p : procs) {
      const Json type = value_or_null(p, "type");
      if (type == "RobertaProcessing") {
        set_add("bos", true), set_add("eos", true), set_add("sep", true);
        if (!truthy(cls) && has_tc) {
          const Json* c = get_in(p, "cls");
          tc["cls_token"] = cls = c && c->is_array() && !c->empty() ? (*c)[0] : bos;
        }
        if (!truthy(sep) && has_tc) {
          const Json* s = get_in(p, "sep");
          tc["sep_token"] = sep = s && s->is_array() && !s->empty() ? (*s)[0] : eos;
        }
        continue;
      }
      if (type != "TemplateProcessing") continue;
      const Json single = get_in(p, "single") ? p["single"] : Json::array();
      Json pair = get_in(p, "pair") ? p["pair"] : Json::array();
      Json first, last;
      if (single.is_array() && single.size() > 1) {
        first = template_special_id(single.front());
        if (truthy(first)) {
          if (!has_tc) {
            bos = first;
          } else if (!in2(first, bos, cls)) {
            if (!truthy(bos)) tc["bos_token"] = bos = first;
            if (!truthy(cls)) tc["cls_token"] = cls = first;
          }
          set_add("bos", in2(first, bos, cls));
        }
        last = template_special_id(single.back());
        if (truthy(last)) {
          if (!has_tc) {
            eos = last;
          } else if (last != eos) {
            if (std::find(types_.begin(), types_.end(), "eot") == types_.end()) {
              types_.push_back("eot");
              tc["eot_token"] = eos;
            } else if (std::find(types_.begin(), types_.end(), "eom") == types_.end()) {
              types_.push_back("eom");
              tc["eom_token"] = eos;
            }
            tc["eos_token"] = eos = last;
          }
          set_add("eos", last == eos);
        }
      }
      if (!pair.is_array() || pair.empty()) continue;
      const size_t start = truthy(first) && template_special_id(pair.front()) == first ? 1 : 0;
      const size_t stop = truthy(last) && template_special_id(pair.back()) == last ? pair.size() - 1 : pair.size();
      if (start >= stop) continue;
      const Json a = get_in(pair[start], "Sequence") ? value_or_null(pair[start]["Sequence"], "id") : Json();
      const Json b = get_in(pair[stop - 1], "Sequence") ? value_or_null(pair[stop - 1]["Sequence"], "id") : Json();
      if (a != "A" || b != "B" || stop - start <= 2) continue;  // middle = pair[start+1 : stop-1]
      bool add_sep = false;
      const size_t mid_n = stop - start - 2;
      if (Json e = template_special_id(pair[start + 1]); truthy(e) && in2(e, sep, eos) && !truthy(last)) add_sep = true;
      if (mid_n == 2)
        if (Json e = template_special_id(pair[start + 2]); truthy(e) && in2(e, sep, eos)) add_sep = true;
      set_add("sep", add_sep);
      if (add_sep && !truthy(sep) && has_tc) tc["sep_token"] = sep = eos;
    }
  }

  // tokenizer_config.get('chat_template', <chat_template.jinja or .json>); the file fallback
  // is the description's chat template, read with the same precedence.
  void load_chat_template(const ModelDescription& desc, const Json& tc) {
    if (auto it = tc.find("chat_template"); it != tc.end()) {
      if (it->is_string() || it->is_array()) chat_template_ = *it;
    } else if (!desc.chat_template.empty()) {
      chat_template_ = Json(desc.chat_template);
    }
  }

  // GGUFWriter.add_chat_template: a list writes named templates plus the "default" one.
  void add_chat_template(KvList& kv) const {
    if (!chat_template_) return;
    if (chat_template_->is_string()) return kv.set("tokenizer.chat_template", GgufValue::string(*chat_template_));
    std::optional<std::string> def;
    std::vector<std::string> names;
    for (const Json& choice : *chat_template_) {
      std::string name = choice.is_object() && choice.contains("name") && choice["name"].is_string()
                             ? choice["name"].get<std::string>() : "";
      for (char& ch : name)
        if (!std::isalnum((unsigned char)ch)) ch = '_';
      const Json* tmpl = get_in(choice, "template");
      if (name.empty() || !tmpl || !tmpl->is_string()) continue;
      if (name == "default") {
        def = tmpl->get<std::string>();
      } else {
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        kv.set("tokenizer.chat_template." + name, GgufValue::string(tmpl->get<std::string>()));
      }
    }
    if (!names.empty()) kv.set("tokenizer.chat_templates", GgufValue::string_array(names));
    if (def) kv.set("tokenizer.chat_template", GgufValue::string(*def));
  }

  // _try_load_from_config_json: <typ>_token_id at the root, else in text_config.
  void load_from_config_json(const Json& config) {
    for (const std::string& typ : types_) {
      Json id = value_or_null(config, typ + "_token_id");
      if (id.is_null())
        if (const Json* text = get_in(config, "text_config")) id = value_or_null(*text, typ + "_token_id");
      set_special(typ, id);
    }
  }

  std::optional<size_t> n_vocab_;
  std::vector<std::string> types_ = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  std::vector<std::string> merges_;
  std::vector<std::pair<std::string, uint32_t>> ids_;
  std::vector<std::pair<std::string, bool>> add_;
  std::optional<Json> chat_template_;
  std::optional<bool> lowercase_, strip_accents_;
};

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

void add_vocab(KvList& kv, const Vocab& v, bool with_scores) {
  kv.set("tokenizer.ggml.tokens", GgufValue::string_array(v.tokens));
  if (with_scores) kv.set("tokenizer.ggml.scores", GgufValue::array<float>(v.scores));
  kv.set("tokenizer.ggml.token_type", GgufValue::array<int32_t>(v.types));
}

// The special tokens transformers reports in all_special_tokens: the named roles and
// additional_special_tokens of tokenizer_config.json (special_tokens_map.json fills gaps).
std::vector<std::string> all_special_tokens(const TokenizerAssets& t) {
  const Json tc = parse_if_present(t.tokenizer_config_json, "tokenizer_config.json");
  const Json stm = parse_if_present(t.special_tokens_map_json, "special_tokens_map.json");
  std::vector<std::string> out;
  auto add = [&](const Json& v) {
    std::string s;
    if (v.is_string()) s = v.get<std::string>();
    else if (const Json* c = get_in(v, "content"); c && c->is_string()) s = c->get<std::string>();
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  for (const char* role : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"})
    add(get_in(tc, role) ? tc[role] : value_or_null(stm, role));
  const Json* extra = get_in(tc, "additional_special_tokens");
  if (!extra) extra = get_in(stm, "additional_special_tokens");
  if (extra && extra->is_array())
    for (const Json& e : *extra) add(e);
  return out;
}

// Ids whose added-token entry says "special": true (tokenizer.json added_tokens and
// tokenizer_config.json added_tokens_decoder): transformers never splits these into text.
std::vector<int64_t> hf_special_added_ids(const TokenizerAssets& t) {
  std::vector<int64_t> ids;
  auto take = [&](const Json& entry, int64_t id) {
    const Json* special = get_in(entry, "special");
    if (id >= 0 && special && special->is_boolean() && special->get<bool>()) ids.push_back(id);
  };
  const Json tok = parse_if_present(t.tokenizer_json, "tokenizer.json");
  if (const Json* list = get_in(tok, "added_tokens"); list && list->is_array())
    for (const Json& a : *list)
      if (const Json* id = get_in(a, "id"); id && id->is_number_integer()) take(a, id->get<int64_t>());
  const Json tc = parse_if_present(t.tokenizer_config_json, "tokenizer_config.json");
  if (const Json* dec = get_in(tc, "added_tokens_decoder"); dec && dec->is_object())
    for (auto it = dec->begin(); it != dec->end(); ++it) {
      char* end = nullptr;
      const long long id = std::strtoll(it.key().c_str(), &end, 10);
      if (end && *end == '\0' && !it.key().empty()) take(*it, id);
    }
  return ids;
}

// Every added token HF marks special (and every token tokenizer_config names special: roles and
// additional_special_tokens) becomes CONTROL, whichever vocabulary path wrote the rest. llama.cpp splits CONTROL tokens out of the text only when parse_special is on and
// never merges them; a NORMAL or USER_DEFINED <start_of_turn> would be tokenized as plain
// text (7 pieces for Gemma 3) or be emitted from plain text. The converter's own paths miss
// some: LlamaHfVocab marks only tokenizer.all_special_tokens (roles and
// additional_special_tokens, not Gemma 3's <start_of_turn>), _create_vocab_sentencepiece
// reads added_tokens_decoder but not tokenizer.json. UNKNOWN/BYTE/UNUSED/CONTROL stay as they
// are (a special <unk> is UNKNOWN in the converter's output, and llama.cpp treats it so).
void mark_special_added_tokens(const TokenizerAssets& t, const std::vector<std::string>& tokens,
                               std::vector<int32_t>& types) {
  std::vector<int64_t> ids = hf_special_added_ids(t);
  for (const std::string& s : all_special_tokens(t))  // named roles, additional_special_tokens
    if (auto it = std::find(tokens.begin(), tokens.end(), s); it != tokens.end()) ids.push_back(it - tokens.begin());
  for (const int64_t id : ids) {
    if (id >= int64_t(types.size())) continue;
    int32_t& type = types[size_t(id)];
    if (type == int32_t(TokenType::kNormal) || type == int32_t(TokenType::kUserDefined)) type = int32_t(TokenType::kControl);
  }
}

enum class HfVocabCheck { kOk, kNotLlamaBpe, kLlama3 };

// LlamaHfVocab.__init__'s pre-check on tokenizer.json.
HfVocabCheck check_llama_hf(const Json& tok) {
  const Json* model = get_in(tok, "model");
  if (!model) return HfVocabCheck::kNotLlamaBpe;
  const bool bpe = value_or_null(*model, "type") == "BPE";
  const Json* bf = get_in(*model, "byte_fallback");
  const Json* im = get_in(*model, "ignore_merges");
  if (bpe && im && truthy(*im) && !(bf ? truthy(*bf) : true)) return HfVocabCheck::kLlama3;
  const Json* dec = get_in(tok, "decoder");
  if (!bpe || !(bf && truthy(*bf)) || !dec || value_or_null(*dec, "type") != "Sequence") return HfVocabCheck::kNotLlamaBpe;
  return HfVocabCheck::kOk;
}

// LlamaHfVocab.all_tokens: the base vocabulary in id order (BYTE for <0xXX>, CONTROL for the
// special tokens), then the added tokens above it (CONTROL if special, else USER_DEFINED);
// every score is -1000.
Vocab llama_hf_vocab(const TokenizerAssets& t, const Json& tok) {
  const Json& base = tok["model"]["vocab"];
  TEMPER_CHECK(base.is_object(), "tokenizer.json: 'model.vocab' must be an object {token: id}");
  std::unordered_map<int64_t, std::string> by_id;
  std::unordered_map<std::string, int64_t> id_of;
  for (auto it = base.begin(); it != base.end(); ++it) {
    TEMPER_CHECK(it->is_number_integer(), "tokenizer.json: model.vocab['", it.key(), "'] is not an integer id");
    by_id[it->get<int64_t>()] = it.key();
    id_of[it.key()] = it->get<int64_t>();
  }
  const int64_t n_base = int64_t(base.size());
  std::vector<std::pair<int64_t, std::string>> added;  // ids >= n_base, sorted
  if (const Json* list = get_in(tok, "added_tokens"); list && list->is_array())
    for (const Json& a : *list) {
      const Json* id = get_in(a, "id");
      const Json* content = get_in(a, "content");
      if (!id || !id->is_number_integer() || !content || !content->is_string()) continue;
      by_id[id->get<int64_t>()] = content->get<std::string>();
      id_of[content->get<std::string>()] = id->get<int64_t>();
      if (id->get<int64_t>() >= n_base) added.emplace_back(id->get<int64_t>(), content->get<std::string>());
    }
  std::sort(added.begin(), added.end());
  std::vector<int64_t> special_ids;
  std::vector<std::string> specials = all_special_tokens(t);
  for (const std::string& s : specials)
    if (auto it = id_of.find(s); it != id_of.end()) special_ids.push_back(it->second);
  auto is_special_id = [&](int64_t id) { return std::find(special_ids.begin(), special_ids.end(), id) != special_ids.end(); };
  static const std::regex kByte("<0x[0-9A-Fa-f]{2}>");
  Vocab v;
  for (int64_t id = 0; id < n_base; ++id) {
    auto it = by_id.find(id);
    TEMPER_CHECK(it != by_id.end(), "tokenizer.json: no token has id ", id, " (ids must be contiguous)");
    v.tokens.push_back(it->second);
    v.scores.push_back(-1000.0f);
    v.types.push_back(int32_t(std::regex_match(it->second, kByte) ? TokenType::kByte
                              : is_special_id(id)                 ? TokenType::kControl
                                                                  : TokenType::kNormal));
  }
  for (const auto& [id, text] : added) {
    const bool special = std::find(specials.begin(), specials.end(), text) != specials.end();
    v.tokens.push_back(text);
    v.scores.push_back(-1000.0f);
    v.types.push_back(int32_t(special && is_special_id(id_of[text]) ? TokenType::kControl : TokenType::kUserDefined));
  }
  mark_special_added_tokens(t, v.tokens, v.types);
  return v;
}

}  // namespace

bool set_vocab_sentencepiece(ArchKvContext& c) {
  const TokenizerAssets& t = c.desc.tokenizer;
  if (t.tokenizer_model.empty()) return false;  // FileNotFoundError: tokenizer.model
  TEMPER_CHECK(t.kind == "sentencepiece", "tokenizer.model is present but the tokenizer was read as '", t.kind,
               "'; cannot write the SentencePiece vocabulary llama.cpp's converter would");
  // _create_vocab_sentencepiece is what TokenizerAssets' SentencePiece reader restates.
  c.kv.set("tokenizer.ggml.model", GgufValue::string("llama"));
  c.kv.set("tokenizer.ggml.pre", GgufValue::string("default"));
  Vocab v{t.tokens, t.scores, t.token_types};
  mark_special_added_tokens(t, v.tokens, v.types);
  add_vocab(c.kv, v, true);
  SpecialVocab(c.desc, false, t.tokens.size()).add_to(c.kv);
  return true;
}

bool set_vocab_llama_hf(ArchKvContext& c) {
  const TokenizerAssets& t = c.desc.tokenizer;
  if (t.tokenizer_json.empty()) return false;
  const Json tok = parse_json(t.tokenizer_json, "tokenizer.json");
  if (check_llama_hf(tok) != HfVocabCheck::kOk) return false;
  const Vocab v = llama_hf_vocab(t, tok);
  c.kv.set("tokenizer.ggml.model", GgufValue::string("llama"));
  c.kv.set("tokenizer.ggml.pre", GgufValue::string("default"));
  add_vocab(c.kv, v, true);
  SpecialVocab(c.desc, false, v.tokens.size()).add_to(c.kv);
  // llama.cpp's SPM tokenizer puts a space before the first text fragment and after every
  // special token unless add_space_prefix is false (src/llama-vocab.cpp, tokenize,
  // LLAMA_VOCAB_TYPE_SPM: is_prev_special); a tokenizer.json that prepends no "▁" (Gemma 3's)
  // must say so, or "<start_of_turn>user" becomes <start_of_turn> "▁user".
  if (!t.add_space_prefix && !c.kv.has("tokenizer.ggml.add_space_prefix"))
    c.kv.set("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(false));
  return true;
}

void set_vocab_gpt2(ArchKvContext& c) {
  const TokenizerAssets& t = c.desc.tokenizer;
  if (t.gguf_model != "gpt2") {
    // llama.cpp's converter would try to read this non-byte-level tokenizer as GPT-2 BPE and
    // fail on its pre-tokenizer hash; write the vocabulary its files describe instead.
    if (set_vocab_sentencepiece(c) || set_vocab_llama_hf(c)) return;
    fail("tokenizer.json: not a byte-level BPE, SentencePiece or byte-fallback BPE tokenizer (read as '", t.kind, "')");
  }
  // get_vocab_base is what TokenizerAssets' byte-level BPE reader restates; pre comes from
  // the pre-tokenizer (llama.cpp: get_vocab_base_pre).
  c.kv.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  c.kv.set("tokenizer.ggml.pre", GgufValue::string(t.gguf_pre));
  Vocab v{t.tokens, {}, t.token_types};
  mark_special_added_tokens(t, v.tokens, v.types);
  add_vocab(c.kv, v, false);
  SpecialVocab(c.desc, true, std::nullopt).add_to(c.kv);
}

void add_token_list(ArchKvContext& c, const std::vector<std::string>& tokens, const std::vector<float>* scores,
                    const std::vector<int32_t>& types) {
  TEMPER_CHECK(types.size() == tokens.size() && (!scores || scores->size() == tokens.size()),
               "token list: ", tokens.size(), " tokens but ", types.size(), " types");
  add_vocab(c.kv, Vocab{tokens, scores ? *scores : std::vector<float>{}, types}, scores != nullptr);
}

void add_special_vocab(ArchKvContext& c, bool load_merges, std::optional<size_t> n_vocab) {
  SpecialVocab(c.desc, load_merges, n_vocab).add_to(c.kv);
}

void set_vocab_gemma4(ArchKvContext& c) {
  const TokenizerAssets& t = c.desc.tokenizer;
  TEMPER_CHECK(!t.tokenizer_json.empty(), "Gemma 4 needs tokenizer.json");
  const Json tok = parse_json(t.tokenizer_json, "tokenizer.json");
  TEMPER_CHECK(check_llama_hf(tok) == HfVocabCheck::kOk,
               "tokenizer.json: Gemma 4 needs a BPE tokenizer with byte_fallback and a Sequence decoder");
  Vocab v = llama_hf_vocab(t, tok);
  // Always rendered, so that the chat parser can read them.
  static const char* kVisible[] = {"<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>",
                                   "<|tool_response>", "<tool_response|>", "<|\"|>"};
  for (size_t i = 0; i < v.tokens.size(); ++i)
    for (const char* s : kVisible)
      if (v.tokens[i] == s) v.types[i] = int32_t(TokenType::kUserDefined);
  c.kv.set("tokenizer.ggml.model", GgufValue::string("gemma4"));
  add_vocab(c.kv, v, true);
  SpecialVocab(c.desc, true, std::nullopt).add_to(c.kv);
  c.kv.set("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(false));
  c.kv.set("tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(true));
}

}  // namespace temper::gguf_meta
