// Builds the pipeline from tokenizer.json exactly as HF tokenizers would run it: model (BPE or
// Unigram), added tokens, normalizer, pre-tokenizer, post-processor (BOS/EOS) and decoder.
// Unsupported component types are errors naming the key and the type; so is every malformed
// value (a missing key, a wrong type): the file comes from strangers, and convert builds the
// tokenizer once so that a checkpoint holding one that cannot load is never written.
#include <string_view>

#include "core/error.h"
#include "core/escape.h"
#include "core/json.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper {

using namespace tok;

namespace {
const char* kFile = "tokenizer.json";

// nlohmann's message without its "[json.exception.type_error.302] " prefix.
std::string json_reason(const Json::exception& e) {
  std::string_view m = e.what();
  if (m.starts_with("[json.exception.")) m.remove_prefix(std::min(m.size(), m.find("] ") + 2));
  return std::string(m);
}

// Runs `fn`, turning a JSON key or type error inside it into an Error naming the key `where`.
template <typename F>
auto at_key(const std::string& where, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Json::exception& e) {
    fail(kFile, ": ", where, ": ", json_reason(e));
  }
}

// `j`, which must be a JSON list (named `where` in the error).
const Json& list_of(const Json& j, const std::string& where) {
  TEMPER_CHECK(j.is_array(), kFile, ": ", where, " must be a list, got ", escaped(j.dump()));
  return j;
}

// A token id: an integer below 2^26 (the vocabulary is a dense array indexed by it).
int32_t id_of(const Json& j, const std::string& where) {
  TEMPER_CHECK(j.is_number_integer() && j.get<int64_t>() >= 0 && j.get<int64_t>() < (1 << 26), kFile, ": ", where,
               " must be a token id (an integer in 0..2^26), got ", escaped(j.dump()));
  return j.get<int32_t>();
}

std::string type_of(const Json& j, const std::string& where) {
  TEMPER_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), kFile, ": '", where, "' has no string 'type'");
  return j["type"].get<std::string>();
}

std::string pattern_string(const Json& j, const std::string& where) {
  const Json& pat = j.at("pattern");
  TEMPER_CHECK(pat.is_object() && pat.contains("String") && pat["String"].is_string(), kFile, ": '", where,
               "' pattern is not a String (only ", escaped(pat.dump()), ")");
  return pat["String"].get<std::string>();
}

void add_normalizer(const Json& j, std::vector<NormalizerStep>& out, const std::string& where);

void add_normalizer_step(const Json& j, std::vector<NormalizerStep>& out, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    const Json& list = list_of(j.at("normalizers"), where + ".normalizers");
    for (size_t i = 0; i < list.size(); ++i) add_normalizer(list[i], out, cat(where, ".normalizers[", i, "]"));
  } else if (t == "NFC") out.push_back({NormalizerStep::kNfc});
  else if (t == "NFKC") out.push_back({NormalizerStep::kNfkc});
  else if (t == "NFD") out.push_back({NormalizerStep::kNfd});
  else if (t == "NFKD") out.push_back({NormalizerStep::kNfkd});
  else if (t == "Lowercase") out.push_back({NormalizerStep::kLowercase});
  else if (t == "Replace") out.push_back({NormalizerStep::kReplace, pattern_string(j, where), j.at("content").get<std::string>()});
  else if (t == "Prepend") out.push_back({NormalizerStep::kPrepend, "", j.at("prepend").get<std::string>()});
  else if (t == "Strip") {
    NormalizerStep s{NormalizerStep::kStrip};
    s.strip_left = j.value("strip_left", false);
    s.strip_right = j.value("strip_right", false);
    out.push_back(s);
  } else fail(kFile, ": ", where, ": normalizer type '", escaped(t), "' is not supported");
}

void add_normalizer(const Json& j, std::vector<NormalizerStep>& out, const std::string& where) {
  if (j.is_null()) return;
  at_key(where, [&] { add_normalizer_step(j, out, where); });
}

PreTokStep::Behavior behavior_of(const Json& j) {
  const std::string b = j.get<std::string>();
  if (b == "Removed") return PreTokStep::kRemoved;
  if (b == "Isolated") return PreTokStep::kIsolated;
  if (b == "MergedWithPrevious") return PreTokStep::kMergedWithPrevious;
  if (b == "MergedWithNext") return PreTokStep::kMergedWithNext;
  if (b == "Contiguous") return PreTokStep::kContiguous;
  fail(kFile, ": Split behavior '", escaped(b), "' is unknown");
}

PreTokStep metaspace_step(const Json& j) {
  PreTokStep s{PreTokStep::kMetaspace};
  s.replacement = j.value("replacement", std::string("\u2581"));
  s.split = j.value("split", true);
  const std::string scheme = j.value("prepend_scheme", j.value("add_prefix_space", true) ? "always" : "never");
  s.prepend = scheme == "first" ? PreTokStep::kFirst : scheme == "never" ? PreTokStep::kNever : PreTokStep::kAlways;
  return s;
}

void add_pre(const Json& j, std::vector<PreTokStep>& out, const std::string& where);

void add_pre_step(const Json& j, std::vector<PreTokStep>& out, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    const Json& list = list_of(j.at("pretokenizers"), where + ".pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) add_pre(list[i], out, cat(where, ".pretokenizers[", i, "]"));
  } else if (t == "Split") {
    PreTokStep s{PreTokStep::kSplit};
    const Json& pat = j.at("pattern");
    if (pat.is_object() && pat.contains("Regex")) s.regex = std::make_shared<const Regex>(pat["Regex"].get<std::string>());
    else s.literal = pattern_string(j, where);
    s.behavior = behavior_of(j.at("behavior"));
    s.invert = j.value("invert", false);
    out.push_back(s);
  } else if (t == "ByteLevel") {
    PreTokStep s{PreTokStep::kByteLevel};
    s.add_prefix_space = j.value("add_prefix_space", false);
    s.use_regex = j.value("use_regex", true);
    out.push_back(s);
  } else if (t == "Metaspace") {
    out.push_back(metaspace_step(j));
  } else fail(kFile, ": ", where, ": pre_tokenizer type '", escaped(t), "' is not supported");
}

void add_pre(const Json& j, std::vector<PreTokStep>& out, const std::string& where) {
  if (j.is_null()) return;
  at_key(where, [&] { add_pre_step(j, out, where); });
}

void add_decoder(const Json& j, std::vector<DecoderStep>& out, const std::string& where);

void add_decoder_step(const Json& j, std::vector<DecoderStep>& out, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    const Json& list = list_of(j.at("decoders"), where + ".decoders");
    for (size_t i = 0; i < list.size(); ++i) add_decoder(list[i], out, cat(where, ".decoders[", i, "]"));
  } else if (t == "ByteLevel") out.push_back({DecoderStep::kByteLevel});
  else if (t == "ByteFallback") out.push_back({DecoderStep::kByteFallback});
  else if (t == "Fuse") out.push_back({DecoderStep::kFuse});
  else if (t == "Replace") out.push_back({DecoderStep::kReplace, pattern_string(j, where), j.at("content").get<std::string>()});
  else if (t == "Strip") {
    DecoderStep s{DecoderStep::kStrip};
    s.content = j.at("content").get<std::string>();
    s.start = j.value("start", 0);
    s.stop = j.value("stop", 0);
    out.push_back(s);
  } else if (t == "Metaspace") {
    const PreTokStep m = metaspace_step(j);
    DecoderStep s{DecoderStep::kMetaspace, m.replacement};
    s.prepend_first = m.prepend != PreTokStep::kNever;
    out.push_back(s);
  } else fail(kFile, ": ", where, ": decoder type '", escaped(t), "' is not supported");
}

void add_decoder(const Json& j, std::vector<DecoderStep>& out, const std::string& where) {
  if (j.is_null()) return;
  at_key(where, [&] { add_decoder_step(j, out, where); });
}

int32_t special_id(const TokenizerPipeline& p, const Json& tp, const std::string& name, const std::string& where) {
  if (tp.contains("special_tokens") && tp["special_tokens"].is_object() && tp["special_tokens"].contains(name)) {
    const std::string key = cat(where, ".special_tokens['", escaped(name), "'].ids");
    const Json& ids = list_of(tp["special_tokens"][name].at("ids"), key);
    TEMPER_CHECK(ids.size() == 1, kFile, ": ", key, " has ", ids.size(), " ids, expected 1");
    return id_of(ids[0], key + "[0]");
  }
  const int32_t id = p.vocab.find(name);
  TEMPER_CHECK(id >= 0, kFile, ": ", where, " names token '", escaped(name), "' that is not in the vocabulary");
  return id;
}

void add_post(const Json& j, TokenizerPipeline& p, const std::string& where);

void add_post_step(const Json& j, TokenizerPipeline& p, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    const Json& list = list_of(j.at("processors"), where + ".processors");
    for (size_t i = 0; i < list.size(); ++i) add_post(list[i], p, cat(where, ".processors[", i, "]"));
  } else if (t == "ByteLevel") {
    // Only adjusts offsets.
  } else if (t == "TemplateProcessing") {
    bool seen_a = false;
    for (const Json& item : list_of(j.at("single"), where + ".single")) {
      TEMPER_CHECK(item.is_object(), kFile, ": ", where, ".single has an entry that is not an object: ", escaped(item.dump()));
      if (item.contains("Sequence")) seen_a = true;
      else if (item.contains("SpecialToken"))
        (seen_a ? p.suffix_ids : p.prefix_ids)
            .push_back(special_id(p, j, item["SpecialToken"].at("id").get<std::string>(), where));
    }
  } else if (t == "BertProcessing" || t == "RobertaProcessing") {
    p.prefix_ids.push_back(id_of(j.at("cls").at(1), where + ".cls[1]"));
    p.suffix_ids.push_back(id_of(j.at("sep").at(1), where + ".sep[1]"));
  } else fail(kFile, ": ", where, ": post_processor type '", escaped(t), "' is not supported");
}

void add_post(const Json& j, TokenizerPipeline& p, const std::string& where) {
  if (j.is_null()) return;
  at_key(where, [&] { add_post_step(j, p, where); });
}

void read_vocab(const Json& model, const Json& added, TokenizerPipeline& p) {
  Vocab& v = p.vocab;
  auto put = [&](const std::string& text, int32_t id, float score) {
    if (static_cast<size_t>(id) >= v.text.size()) v.text.resize(id + 1), v.scores.resize(id + 1);
    v.text[id] = text;
    v.scores[id] = score;
    v.ids.try_emplace(text, id);
  };
  TEMPER_CHECK(model.contains("vocab"), kFile, ": model.vocab is missing");
  const Json& vocab = model["vocab"];
  if (vocab.is_object()) {
    for (auto it = vocab.begin(); it != vocab.end(); ++it)
      put(it.key(), id_of(it.value(), cat("model.vocab['", escaped(it.key()), "']")), 0.0f);
  } else {  // Unigram: [[piece, score], ...]
    list_of(vocab, "model.vocab");
    TEMPER_CHECK(vocab.size() < (1u << 26), kFile, ": model.vocab has ", vocab.size(), " entries");
    for (size_t i = 0; i < vocab.size(); ++i)
      at_key(cat("model.vocab[", i, "]"), [&] {
        put(vocab[i].at(0).get<std::string>(), static_cast<int32_t>(i), vocab[i].at(1).get<float>());
      });
  }
  list_of(added, "added_tokens");
  for (size_t i = 0; i < added.size(); ++i) {
    const Json& a = added[i];
    const std::string where = cat("added_tokens[", i, "]");
    AddedToken t;
    at_key(where, [&] {
      t.content = a.at("content").get<std::string>();
      t.id = id_of(a.at("id"), where + ".id");
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
    });
    const bool normalized = at_key(where, [&] { return a.value("normalized", false); });
    TEMPER_CHECK(!normalized || !t.special, kFile, ": added token '", escaped(t.content),
                 "' is special and normalized; matching on normalized text is not supported");
    if (static_cast<size_t>(t.id) >= v.text.size() || v.text[t.id].empty()) put(t.content, t.id, 0.0f);
    p.added.push_back(std::move(t));
  }
}
}  // namespace

std::unique_ptr<TokenizerPipeline> build_hf_pipeline(const TokenizerAssets& a) {
  TEMPER_CHECK(!a.tokenizer_json.empty(), "tokenizer: no tokenizer.json in the assets");
  const Json j = parse_json(a.tokenizer_json, kFile);
  TEMPER_CHECK(j.is_object() && j.contains("model"), kFile, ": no 'model' object");
  auto p = std::make_unique<TokenizerPipeline>();
  const Json& model = j["model"];
  const std::string mtype = type_of(model, "model");
  read_vocab(model, j.contains("added_tokens") && !j["added_tokens"].is_null() ? j["added_tokens"] : Json::array(), *p);
  auto unk_of = [&](const Json& unk) { return unk.is_string() ? p->vocab.find(unk.get<std::string>()) : -1; };
  auto flag = [&](const char* key) { return at_key(cat("model.", key), [&] { return model.value(key, false); }); };
  if (mtype == "BPE") {
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      TEMPER_CHECK(!model.contains(key) || model[key].is_null() || model[key] == "", kFile, ": model.", key, " is not supported");
    RankBpe& b = p->rank_bpe;
    b.ignore_merges = flag("ignore_merges");
    b.byte_fallback = flag("byte_fallback");
    b.fuse_unk = flag("fuse_unk");
    b.unk_id = unk_of(model.contains("unk_token") ? model["unk_token"] : Json());
    TEMPER_CHECK(model.contains("merges"), kFile, ": model.merges is missing");
    const Json& merges = list_of(model["merges"], "model.merges");
    for (size_t i = 0; i < merges.size(); ++i) {
      const Json& m = merges[i];
      const int32_t rank = int32_t(i);
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        TEMPER_CHECK(sp != std::string::npos, kFile, ": model.merges[", i, "] '", escaped(s), "' has no space");
        b.add_merge(p->vocab, s.substr(0, sp), s.substr(sp + 1), rank);
      } else {
        TEMPER_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), kFile, ": model.merges[",
                     i, "] must be a string \"a b\" or a pair of strings, got ", escaped(m.dump()));
        b.add_merge(p->vocab, m[0].get<std::string>(), m[1].get<std::string>(), rank);
      }
    }
    p->model = TokenizerPipeline::kRankBpe;
  } else if (mtype == "Unigram") {
    const Json unk = model.contains("unk_id") ? model["unk_id"] : Json();
    p->unigram.unk_id = unk.is_null() ? -1 : id_of(unk, "model.unk_id");
    p->unigram.byte_fallback = flag("byte_fallback");
    p->model = TokenizerPipeline::kUnigram;
  } else {
    fail(kFile, ": model type '", escaped(mtype), "' is not supported (BPE and Unigram are)");
  }
  auto part = [&](const char* key) { return j.contains(key) ? j[key] : Json(); };
  add_normalizer(part("normalizer"), p->normalizers, "normalizer");
  add_pre(part("pre_tokenizer"), p->pre, "pre_tokenizer");
  add_post(part("post_processor"), *p, "post_processor");
  add_decoder(part("decoder"), p->decoders, "decoder");
  p->bos = a.bos_id;
  p->eos = a.eos_id;
  p->eog = a.eog_ids;
  return p;
}

}  // namespace temper
