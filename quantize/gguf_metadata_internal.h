// Shared by gguf_metadata.cpp, gguf_arch_kv.cpp and tokenizer_kv.cpp (not a public header):
// an ordered KV list with the converter's overwrite rule, and config.json lookups the way
// llama.cpp's converter does them (conversion/base.py TextModel.find_hparam / hparams.get).
#pragma once
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "core/json.h"
#include "quantize/gguf_metadata.h"

namespace temper::gguf_meta {

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
  FileType ftype;
  KvList& kv;
  std::string key(std::string_view suffix) const { return arch + "." + std::string(suffix); }
};

// TextModel.set_gguf_parameters (ends with general.file_type).
void text_model_parameters(ArchKvContext& c);

// Per-architecture hooks (gguf_arch_kv.cpp): set_gguf_parameters and set_vocab.
struct ArchKv {
  std::string_view id;  // registry id (ArchSpec::id)
  void (*set_parameters)(ArchKvContext&);
  void (*set_vocab)(ArchKvContext&);
};
const ArchKv& find_arch_kv(std::string_view id);

// Vocabulary writers (tokenizer_kv.cpp), named after the converter functions they restate.
// Each returns false where the converter raises FileNotFoundError (the caller tries the next).
bool set_vocab_sentencepiece(ArchKvContext& c);  // TextModel._set_vocab_sentencepiece
bool set_vocab_llama_hf(ArchKvContext& c);       // TextModel._set_vocab_llama_hf
void set_vocab_gpt2(ArchKvContext& c);           // TextModel._set_vocab_gpt2
void set_vocab_gemma4(ArchKvContext& c);         // Gemma4Model.set_vocab

}  // namespace temper::gguf_meta
