// Builds the pipeline from tokenizer.json exactly as HF tokenizers would run it: model (BPE or
// Unigram), added tokens, normalizer, pre-tokenizer, post-processor (BOS/EOS) and decoder.
// Unsupported component types are errors naming the key and the type.
#include "core/error.h"
#include "core/json.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper {

using namespace tok;

namespace {
const char* kFile = "tokenizer.json";

std::string type_of(const Json& j, const std::string& where) {
  TEMPER_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), kFile, ": '", where, "' has no string 'type'");
  return j["type"].get<std::string>();
}

std::string pattern_string(const Json& j, const std::string& where) {
  const Json& pat = j.at("pattern");
  TEMPER_CHECK(pat.contains("String"), kFile, ": '", where, "' pattern is not a String (only ", pat.dump(), ")");
  return pat["String"].get<std::string>();
}

void add_normalizer(const Json& j, std::vector<NormalizerStep>& out) {
  if (j.is_null()) return;
  const std::string t = type_of(j, "normalizer");
  if (t == "Sequence") {
    for (const Json& n : j.at("normalizers")) add_normalizer(n, out);
  } else if (t == "NFC") out.push_back({NormalizerStep::kNfc});
  else if (t == "NFKC") out.push_back({NormalizerStep::kNfkc});
  else if (t == "NFD") out.push_back({NormalizerStep::kNfd});
  else if (t == "NFKD") out.push_back({NormalizerStep::kNfkd});
  else if (t == "Lowercase") out.push_back({NormalizerStep::kLowercase});
  else if (t == "Replace") out.push_back({NormalizerStep::kReplace, pattern_string(j, "normalizer.Replace"), j.at("content").get<std::string>()});
  else if (t == "Prepend") out.push_back({NormalizerStep::kPrepend, "", j.at("prepend").get<std::string>()});
  else if (t == "Strip") {
    NormalizerStep s{NormalizerStep::kStrip};
    s.strip_left = j.value("strip_left", false);
    s.strip_right = j.value("strip_right", false);
    out.push_back(s);
  } else fail(kFile, ": normalizer type '", t, "' is not supported");
}

PreTokStep::Behavior behavior_of(const std::string& b) {
  if (b == "Removed") return PreTokStep::kRemoved;
  if (b == "Isolated") return PreTokStep::kIsolated;
  if (b == "MergedWithPrevious") return PreTokStep::kMergedWithPrevious;
  if (b == "MergedWithNext") return PreTokStep::kMergedWithNext;
  if (b == "Contiguous") return PreTokStep::kContiguous;
  fail(kFile, ": Split behavior '", b, "' is unknown");
}

PreTokStep metaspace_step(const Json& j) {
  PreTokStep s{PreTokStep::kMetaspace};
  s.replacement = j.value("replacement", std::string("\u2581"));
  s.split = j.value("split", true);
  const std::string scheme = j.value("prepend_scheme", j.value("add_prefix_space", true) ? "always" : "never");
  s.prepend = scheme == "first" ? PreTokStep::kFirst : scheme == "never" ? PreTokStep::kNever : PreTokStep::kAlways;
  return s;
}

void add_pre(const Json& j, std::vector<PreTokStep>& out) {
  if (j.is_null()) return;
  const std::string t = type_of(j, "pre_tokenizer");
  if (t == "Sequence") {
    for (const Json& p : j.at("pretokenizers")) add_pre(p, out);
  } else if (t == "Split") {
    PreTokStep s{PreTokStep::kSplit};
    const Json& pat = j.at("pattern");
    if (pat.contains("Regex")) s.regex = std::make_shared<const Regex>(pat["Regex"].get<std::string>());
    else s.literal = pattern_string(j, "pre_tokenizer.Split");
    s.behavior = behavior_of(j.at("behavior").get<std::string>());
    s.invert = j.value("invert", false);
    out.push_back(s);
  } else if (t == "ByteLevel") {
    PreTokStep s{PreTokStep::kByteLevel};
    s.add_prefix_space = j.value("add_prefix_space", false);
    s.use_regex = j.value("use_regex", true);
    out.push_back(s);
  } else if (t == "Metaspace") {
    out.push_back(metaspace_step(j));
  } else fail(kFile, ": pre_tokenizer type '", t, "' is not supported");
}

void add_decoder(const Json& j, std::vector<DecoderStep>& out) {
  if (j.is_null()) return;
  const std::string t = type_of(j, "decoder");
  if (t == "Sequence") {
    for (const Json& d : j.at("decoders")) add_decoder(d, out);
  } else if (t == "ByteLevel") out.push_back({DecoderStep::kByteLevel});
  else if (t == "ByteFallback") out.push_back({DecoderStep::kByteFallback});
  else if (t == "Fuse") out.push_back({DecoderStep::kFuse});
  else if (t == "Replace") out.push_back({DecoderStep::kReplace, pattern_string(j, "decoder.Replace"), j.at("content").get<std::string>()});
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
  } else fail(kFile, ": decoder type '", t, "' is not supported");
}

int32_t special_id(const TokenizerPipeline& p, const Json& tp, const std::string& name) {
  if (tp.contains("special_tokens") && tp["special_tokens"].contains(name)) {
    const Json& ids = tp["special_tokens"][name].at("ids");
    TEMPER_CHECK(ids.size() == 1, kFile, ": post_processor special token '", name, "' has ", ids.size(), " ids");
    return ids[0].get<int32_t>();
  }
  const int32_t id = p.vocab.find(name);
  TEMPER_CHECK(id >= 0, kFile, ": post_processor names token '", name, "' that is not in the vocabulary");
  return id;
}

void add_post(const Json& j, TokenizerPipeline& p) {
  if (j.is_null()) return;
  const std::string t = type_of(j, "post_processor");
  if (t == "Sequence") {
    for (const Json& q : j.at("processors")) add_post(q, p);
  } else if (t == "ByteLevel") {
    // Only adjusts offsets.
  } else if (t == "TemplateProcessing") {
    bool seen_a = false;
    for (const Json& item : j.at("single")) {
      if (item.contains("Sequence")) seen_a = true;
      else if (item.contains("SpecialToken"))
        (seen_a ? p.suffix_ids : p.prefix_ids).push_back(special_id(p, j, item["SpecialToken"].at("id").get<std::string>()));
    }
  } else if (t == "BertProcessing" || t == "RobertaProcessing") {
    p.prefix_ids.push_back(j.at("cls").at(1).get<int32_t>());
    p.suffix_ids.push_back(j.at("sep").at(1).get<int32_t>());
  } else fail(kFile, ": post_processor type '", t, "' is not supported");
}

void read_vocab(const Json& model, const Json& added, TokenizerPipeline& p) {
  Vocab& v = p.vocab;
  auto put = [&](const std::string& text, int32_t id, float score) {
    TEMPER_CHECK(id >= 0 && id < (1 << 26), kFile, ": token '", text, "' has id ", id);
    if (static_cast<size_t>(id) >= v.text.size()) v.text.resize(id + 1), v.scores.resize(id + 1);
    v.text[id] = text;
    v.scores[id] = score;
    v.ids.try_emplace(text, id);
  };
  const Json& vocab = model.at("vocab");
  if (vocab.is_object()) {
    for (auto it = vocab.begin(); it != vocab.end(); ++it) put(it.key(), it.value().get<int32_t>(), 0.0f);
  } else {  // Unigram: [[piece, score], ...]
    for (size_t i = 0; i < vocab.size(); ++i) put(vocab[i].at(0).get<std::string>(), static_cast<int32_t>(i), vocab[i].at(1).get<float>());
  }
  for (const Json& a : added) {
    AddedToken t;
    t.content = a.at("content").get<std::string>();
    t.id = a.at("id").get<int32_t>();
    t.special = a.value("special", false);
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.single_word = a.value("single_word", false);
    TEMPER_CHECK(!a.value("normalized", false) || !t.special, kFile, ": added token '", t.content,
                 "' is special and normalized; matching on normalized text is not supported");
    if (static_cast<size_t>(t.id) >= v.text.size() || v.text[t.id].empty()) put(t.content, t.id, 0.0f);
    p.added.push_back(std::move(t));
  }
}
}  // namespace

std::unique_ptr<TokenizerPipeline> build_hf_pipeline(const TokenizerAssets& a) {
  TEMPER_CHECK(!a.tokenizer_json.empty(), "tokenizer: no tokenizer.json in the assets");
  const Json j = parse_json(a.tokenizer_json, kFile);
  auto p = std::make_unique<TokenizerPipeline>();
  const Json& model = j.at("model");
  const std::string mtype = type_of(model, "model");
  read_vocab(model, j.value("added_tokens", Json::array()), *p);
  auto unk_of = [&](const Json& unk) { return unk.is_string() ? p->vocab.find(unk.get<std::string>()) : -1; };
  if (mtype == "BPE") {
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      TEMPER_CHECK(!model.contains(key) || model[key].is_null() || model[key] == "", kFile, ": model.", key, " is not supported");
    RankBpe& b = p->rank_bpe;
    b.ignore_merges = model.value("ignore_merges", false);
    b.byte_fallback = model.value("byte_fallback", false);
    b.fuse_unk = model.value("fuse_unk", false);
    b.unk_id = unk_of(model.value("unk_token", Json()));
    int32_t rank = 0;
    for (const Json& m : model.at("merges")) {
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        TEMPER_CHECK(sp != std::string::npos, kFile, ": merge ", rank, " '", s, "' has no space");
        b.add_merge(p->vocab, s.substr(0, sp), s.substr(sp + 1), rank);
      } else {
        b.add_merge(p->vocab, m.at(0).get<std::string>(), m.at(1).get<std::string>(), rank);
      }
      ++rank;
    }
    p->model = TokenizerPipeline::kRankBpe;
  } else if (mtype == "Unigram") {
    p->unigram.unk_id = model.value("unk_id", Json()).is_number() ? model["unk_id"].get<int32_t>() : -1;
    p->unigram.byte_fallback = model.value("byte_fallback", false);
    p->model = TokenizerPipeline::kUnigram;
  } else {
    fail(kFile, ": model type '", mtype, "' is not supported (BPE and Unigram are)");
  }
  add_normalizer(j.value("normalizer", Json()), p->normalizers);
  add_pre(j.value("pre_tokenizer", Json()), p->pre);
  add_post(j.value("post_processor", Json()), *p);
  add_decoder(j.value("decoder", Json()), p->decoders);
  p->bos = a.bos_id;
  p->eos = a.eos_id;
  p->eog = a.eog_ids;
  return p;
}

}  // namespace temper
