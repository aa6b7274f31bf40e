// What the architecture files need to write GGUF metadata the way llama.cpp's converter does:
// an ordered KV list with the converter's overwrite rule, config.json lookups as the converter
// does them (conversion/base.py TextModel.find_hparam / hparams.get), the generic
// TextModel.set_gguf_parameters and the vocabulary writers (gguf_vocab.cpp). Each architecture's
// own set_gguf_parameters/set_vocab live in runtime/model/arch/<id>.cpp (ArchSpec::gguf_write);
// quantize/gguf_metadata.cpp runs them in the converter's order.
#pragma once
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <utility>
#include <vector>

#include "core/json.h"
#include "formats/gguf.h"
#include "model/model_desc.h"

namespace temper {

using GgufKvList = std::vector<std::pair<std::string, GgufValue>>;

namespace gguf_meta {

// GGUFWriter.add_key_value: the kv dict keeps a key at its first position; a later write
// replaces only the value.
class KvList {
 public:
  void set(const std::string& key, GgufValue v);
  void remove(const std::string& key);
  bool has(const std::string& key) const { return index_.count(key) != 0; }
  void append(GgufKvList kvs) {
    for (auto& [k, v] : kvs) set(k, std::move(v));
  }
  GgufKvList take();

 private:
  GgufKvList items_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Truthiness of a JSON value as Python sees the parsed object (None, "", 0, {}, [] are false).
bool truthy(const Json& v);

// Value builders with the converter's (struct.pack) types. Each throws Error naming `what`
// (the config key) when the JSON value cannot be packed as that type.
GgufValue u32_of(const Json& v, std::string_view what);
GgufValue i32_of(const Json& v, std::string_view what);
GgufValue f32_of(const Json& v, std::string_view what);
GgufValue str_of(const Json& v, std::string_view what);
// add_head_count_kv / add_feed_forward_length / add_expert_used_count: an int is u32, a list
// is an i32 array (GGUFValueType.get_type of a Python int).
GgufValue u32_or_array_of(const Json& v, std::string_view what);

// config.json as TextModel sees it: {**root, **text_config}.
class Hparams {
 public:
  Hparams(const std::string& config_json, std::string source);
  // find_hparam: the value of the first key present (possibly a JSON null); nullptr if none.
  const Json* find(std::initializer_list<std::string_view> keys) const;
  // hparams.get(key): nullptr when absent or null.
  const Json* get(std::string_view key) const;
  // hparams[key]: throws Error naming the key when it is absent.
  const Json& at(std::string_view key) const;
  const Json& root() const { return flat_; }
  const Json& raw() const { return raw_; }  // config.json before flattening
  const std::string& source() const { return source_; }

 private:
  Json raw_, flat_;
  std::string source_;
};

struct ArchKvContext {
  const ModelDescription& desc;
  const Hparams& hp;
  Json rope_parameters;  // TextModel.__init__'s self.rope_parameters (with mirrored globals)
  std::string arch;      // GGUF arch name: the "{arch}." key prefix
  uint32_t file_type;    // general.file_type (llama_ftype)
  KvList& kv;
  std::string key(std::string_view suffix) const { return arch + "." + std::string(suffix); }
};

// TextModel.set_gguf_parameters (ends with general.file_type).
void text_model_parameters(ArchKvContext& c);

// `v` is present and not JSON null.
inline bool non_null(const Json* v) { return v && !v->is_null(); }
// dict.get on a JSON object: nullptr when `obj` is no object or the key is absent or null.
const Json* get_in(const Json& obj, std::string_view key);
// hparams.get(key, default): the value even when it is null, `fallback` when absent.
Json get_or(const Hparams& hp, std::string_view key, Json fallback);

// Vocabulary writers (gguf_vocab.cpp), named after the converter functions they restate.
// Each returns false where the converter raises FileNotFoundError (the caller tries the next).
bool set_vocab_sentencepiece(ArchKvContext& c);  // TextModel._set_vocab_sentencepiece
bool set_vocab_llama_hf(ArchKvContext& c);       // TextModel._set_vocab_llama_hf
void set_vocab_gpt2(ArchKvContext& c);           // TextModel._set_vocab_gpt2
void set_vocab_gemma4(ArchKvContext& c);         // Gemma4Model.set_vocab
// For architectures whose converter class builds its own token table: add_token_list,
// add_token_scores (when `scores` is not null) and add_token_types; then gguf-py's
// SpecialVocab(dir, load_merges, n_vocab).add_to_gguf (special ids, add_*_token flags,
// merges, chat template).
void add_token_list(ArchKvContext& c, const std::vector<std::string>& tokens, const std::vector<float>* scores,
                    const std::vector<int32_t>& types);
void add_special_vocab(ArchKvContext& c, bool load_merges, std::optional<size_t> n_vocab);

}  // namespace gguf_meta
}  // namespace temper
