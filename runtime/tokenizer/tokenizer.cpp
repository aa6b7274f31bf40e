// Tokenizer: splits added/special tokens out of the text (leftmost-longest, as HF's
// AddedVocabulary does), then runs normalizer -> pre-tokenizer -> model on each text fragment.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper {

using namespace tok;

void TokenizerPipeline::build_trie() {
  trie.assign(1, TrieNode{});
  for (size_t k = 0; k < added.size(); ++k) {
    int32_t node = 0;
    for (unsigned char c : added[k].content) {
      int32_t next = -1;
      for (auto& [ch, idx] : trie[node].next)
        if (ch == c) next = idx;
      if (next < 0) {
        next = static_cast<int32_t>(trie.size());
        trie[node].next.push_back({c, next});
        trie.push_back(TrieNode{});
      }
      node = next;
    }
    if (node != 0) trie[node].added_index = static_cast<int32_t>(k);
  }
}

void TokenizerPipeline::encode_fragment(std::string text, bool first, bool after_special, std::vector<int32_t>& out) const {
  if (collapse_spaces) {  // SentencePiece remove_extra_whitespaces
    std::string c;
    for (char ch : text)
      if (ch != ' ' || (!c.empty() && c.back() != ' ')) c += ch;
    while (!c.empty() && c.back() == ' ') c.pop_back();
    text.swap(c);
  }
  if (text.empty()) return;
  if (space_prefix_after_special && (first || after_special)) text = " " + text;
  text = normalize(normalizers, std::move(text));
  for (const std::string& piece : pre_tokenize(pre, std::move(text), first)) {
    switch (model) {
      case kRankBpe: rank_bpe.encode(vocab, piece, out); break;
      case kScoreBpe: score_bpe.encode(vocab, piece, out); break;
      case kUnigram: unigram.encode(vocab, piece, out); break;
    }
  }
}

namespace {
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_word(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }
}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const TokenizerPipeline& p = *p_;
  std::vector<int32_t> out;
  if (add_special) out = p.prefix_ids;
  size_t pending = 0;  // start of the text not yet encoded
  // llama.cpp's is_prev_special starts true: the first fragment gets the SPM space prefix.
  bool first = true, after_special = true;
  auto flush = [&](size_t end) {
    if (end > pending) {
      p.encode_fragment(std::string(text.substr(pending, end - pending)), first, after_special, out);
      first = false;
      after_special = false;
    }
  };
  for (size_t i = 0; i < text.size();) {
    int32_t node = 0, match = -1;
    size_t match_end = 0;
    for (size_t j = i; j < text.size(); ++j) {
      int32_t next = -1;
      for (auto& [ch, idx] : p.trie[node].next)
        if (ch == static_cast<unsigned char>(text[j])) next = idx;
      if (next < 0) break;
      node = next;
      const int32_t a = p.trie[node].added_index;
      if (a >= 0 && (parse_special || !p.added[a].special)) match = a, match_end = j + 1;
    }
    if (match >= 0 && p.added[match].single_word &&
        ((i > 0 && is_word(text[i - 1])) || (match_end < text.size() && is_word(text[match_end]))))
      match = -1;
    if (match < 0) {
      i += utf8_char_len(static_cast<unsigned char>(text[i]));
      continue;
    }
    size_t left_end = i;
    if (p.added[match].lstrip)
      while (left_end > pending && is_space(text[left_end - 1])) --left_end;
    flush(left_end);
    out.push_back(p.added[match].id);
    first = false;
    after_special = true;
    i = match_end;
    if (p.added[match].rstrip)
      while (i < text.size() && is_space(text[i])) ++i;
    pending = i;
  }
  flush(text.size());
  if (add_special) out.insert(out.end(), p.suffix_ids.begin(), p.suffix_ids.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    TEMPER_CHECK(id >= 0 && static_cast<size_t>(id) < p_->vocab.text.size(), "decode: token id ", id,
                 " is outside the vocabulary of ", p_->vocab.text.size());
    tokens.push_back(p_->vocab.text[id]);
  }
  return run_decoders(p_->decoders, std::move(tokens), true);
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= p_->vocab.text.size()) return {};
  return run_decoders(p_->decoders, {p_->vocab.text[id]}, false);
}

int32_t Tokenizer::bos() const { return p_->bos; }
int32_t Tokenizer::eos() const { return p_->eos; }
bool Tokenizer::is_eog(int32_t id) const { return std::find(p_->eog.begin(), p_->eog.end(), id) != p_->eog.end(); }
size_t Tokenizer::n_vocab() const { return p_->vocab.text.size(); }
int32_t Tokenizer::token_id(std::string_view text) const { return p_->vocab.find(text); }
TokenizerSource Tokenizer::source() const { return p_->source; }

Tokenizer::Tokenizer(std::unique_ptr<TokenizerPipeline> p) : p_(std::move(p)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_assets(const TokenizerAssets& a, TokenizerSource source) {
  if (source == TokenizerSource::kAuto)
    source = !a.tokenizer_json.empty()    ? TokenizerSource::kHfJson
             : !a.tokenizer_model.empty() ? TokenizerSource::kSentencePiece
                                          : TokenizerSource::kGguf;
  std::unique_ptr<TokenizerPipeline> p;
  switch (source) {
    case TokenizerSource::kHfJson: p = build_hf_pipeline(a); break;
    case TokenizerSource::kSentencePiece: p = build_sentencepiece_pipeline(a); break;
    default: p = build_gguf_pipeline(a); break;
  }
  p->source = source;
  p->build_trie();
  return Tokenizer(std::move(p));
}

std::vector<std::vector<int32_t>> encode_all(const Tokenizer& tok, std::span<const std::string> texts,
                                             bool add_special, bool parse_special) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) out.push_back(tok.encode(t, add_special, parse_special));
  return out;
}

}  // namespace temper
