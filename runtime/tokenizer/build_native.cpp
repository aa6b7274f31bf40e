// Builds the pipeline from tokenizer.model (SentencePiece semantics) or from the typed GGUF
// fields (llama.cpp semantics for tokenizer.ggml.model "llama", "gpt2" + pre, "gemma4").
#include "core/error.h"
#include "model/sentencepiece_model.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper {

using namespace tok;

namespace {
void set_vocab(TokenizerPipeline& p, std::vector<std::string> text, std::vector<float> scores, std::vector<int32_t> types) {
  Vocab& v = p.vocab;
  v.text = std::move(text);
  v.scores = std::move(scores);
  v.types = std::move(types);
  v.scores.resize(v.text.size(), 0.0f);
  for (size_t i = 0; i < v.text.size(); ++i) v.ids.try_emplace(v.text[i], static_cast<int32_t>(i));
  // Control/unknown tokens are split out only with parse_special; user-defined ones always
  // (llama.cpp tokenizer_st_partition).
  for (size_t i = 0; i < v.types.size(); ++i) {
    const auto t = static_cast<TokenType>(v.types[i]);
    if ((t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined) && !v.text[i].empty())
      p.added.push_back({v.text[i], static_cast<int32_t>(i), t != TokenType::kUserDefined});
  }
}

// ▁-escaped SentencePiece-style text: escape on the way in, unescape + bytes on the way out.
void spm_text_steps(TokenizerPipeline& p, bool strip_leading_space) {
  p.normalizers.push_back({NormalizerStep::kReplace, " ", "\u2581"});
  p.decoders.push_back({DecoderStep::kReplace, "\u2581", " "});
  p.decoders.push_back({DecoderStep::kByteFallback});
  p.decoders.push_back({DecoderStep::kFuse});
  if (strip_leading_space) {
    DecoderStep s{DecoderStep::kStrip};
    s.content = " ";
    s.start = 1;
    p.decoders.push_back(s);
  }
}

void special_ids(TokenizerPipeline& p, const TokenizerAssets& a) {
  p.bos = a.bos_id;
  p.eos = a.eos_id;
  p.eog = a.eog_ids;
  if (a.add_bos && a.bos_id >= 0) p.prefix_ids.push_back(a.bos_id);
  if (a.add_eos && a.eos_id >= 0) p.suffix_ids.push_back(a.eos_id);
}
}  // namespace

std::unique_ptr<TokenizerPipeline> build_sentencepiece_pipeline(const TokenizerAssets& a) {
  TEMPER_CHECK(!a.tokenizer_model.empty(), "tokenizer: no tokenizer.model in the assets");
  const SentencePieceModel sp = parse_sentencepiece_model(a.tokenizer_model, "tokenizer.model");
  auto p = std::make_unique<TokenizerPipeline>();
  std::vector<std::string> text;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& piece : sp.pieces) text.push_back(piece.piece), scores.push_back(piece.score), types.push_back(piece.type);
  set_vocab(*p, std::move(text), std::move(scores), std::move(types));
  // Only the identity normalizer is exact here; nmt_nfkc's precompiled map differs from plain
  // NFKC in a few control/space characters, so refuse rather than guess.
  TEMPER_CHECK(sp.normalizer_name.empty() || sp.normalizer_name == "identity", "tokenizer.model: normalizer '",
               sp.normalizer_name, "' is not supported (only identity)");
  p->collapse_spaces = sp.remove_extra_whitespaces;
  p->space_prefix_after_special = sp.add_dummy_prefix;
  TEMPER_CHECK(sp.escape_whitespaces, "tokenizer.model: escape_whitespaces=false is not supported");
  spm_text_steps(*p, sp.add_dummy_prefix);
  if (sp.model_type == 2) {
    p->model = TokenizerPipeline::kScoreBpe;
    p->score_bpe.unk_id = sp.unk_id;
  } else if (sp.model_type == 1) {
    p->model = TokenizerPipeline::kUnigram;
    p->unigram.unk_id = sp.unk_id;
    p->unigram.byte_fallback = sp.byte_fallback;
  } else {
    fail("tokenizer.model: model_type ", sp.model_type, " is not supported (1 unigram, 2 BPE are)");
  }
  special_ids(*p, a);
  return p;
}

std::unique_ptr<TokenizerPipeline> build_gguf_pipeline(const TokenizerAssets& a) {
  TEMPER_CHECK(!a.tokens.empty(), "tokenizer: the assets hold no token list (tokenizer.ggml.tokens)");
  TEMPER_CHECK(a.token_types.empty() || a.token_types.size() == a.tokens.size(), "tokenizer: ", a.token_types.size(),
               " token types for ", a.tokens.size(), " tokens");
  auto p = std::make_unique<TokenizerPipeline>();
  set_vocab(*p, a.tokens, a.scores, a.token_types);
  const std::string& m = a.gguf_model;
  if (m == "llama") {
    p->model = TokenizerPipeline::kScoreBpe;
    p->score_bpe.unk_id = a.unk_id;
    p->space_prefix_after_special = a.add_space_prefix;
    spm_text_steps(*p, a.add_space_prefix);
  } else if (m == "gpt2" || m == "gemma4") {
    RankBpe& b = p->rank_bpe;
    for (size_t r = 0; r < a.merges.size(); ++r) {
      const std::string& s = a.merges[r];
      const size_t sp = s.find(' ', 1);  // llama.cpp: the first space after the first byte
      TEMPER_CHECK(sp != std::string::npos, "tokenizer.ggml.merges[", r, "] '", s, "' has no space");
      b.add_merge(p->vocab, s.substr(0, sp), s.substr(sp + 1), static_cast<int32_t>(r));
    }
    const std::string pre = m == "gemma4" ? "gemma4" : a.gguf_pre;
    for (const std::string& rx : llama_cpp_pre_regexes(pre)) {
      PreTokStep s{PreTokStep::kSplit};
      s.regex = std::make_shared<const Regex>(rx);
      p->pre.push_back(s);
    }
    if (m == "gemma4") {
      b.byte_fallback = true;
      b.whole_newline_words = true;
      spm_text_steps(*p, false);
    } else {
      b.ignore_merges = pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "pixtral";
      p->pre.push_back({PreTokStep::kByteLevel});
      p->decoders.push_back({DecoderStep::kByteLevel});
    }
    p->model = TokenizerPipeline::kRankBpe;
  } else {
    fail("tokenizer: GGUF tokenizer model '", m, "' is not supported (llama, gpt2, gemma4 are)");
  }
  special_ids(*p, a);
  return p;
}

}  // namespace temper
