// Internal pieces of the tokenizer: a pipeline of normalizer steps, pre-tokenizer steps, one
// model (rank BPE, score BPE or unigram) and decoder steps, assembled by build_hf.cpp (tokenizer.json)
// or build_native.cpp (tokenizer.model, GGUF fields). Not part of the public API.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace temper::tok {

// ---- UTF-8 and GPT-2 byte-level mapping (unicode_util.cpp)
size_t utf8_char_len(unsigned char lead);  // 1 for invalid lead bytes
std::vector<std::string_view> utf8_chars(std::string_view s);
const std::array<std::string, 256>& byte_to_unicode();  // byte -> its printable stand-in (UTF-8)
int unicode_to_byte(std::string_view ch);                // -1 when `ch` stands for no byte
std::string byte_token_text(uint8_t b);                  // "<0xAB>"
void replace_all(std::string& s, std::string_view from, std::string_view to);

// ---- normalizers (normalize.cpp)
struct NormalizerStep {
  enum Kind { kNfc, kNfkc, kNfd, kNfkd, kReplace, kPrepend, kLowercase, kStrip } kind;
  std::string from{}, to{};        // kReplace: literal pattern -> content; kPrepend: to
  bool strip_left = false, strip_right = false;
};
std::string normalize(const std::vector<NormalizerStep>& steps, std::string text);
std::string unicode_normalize(NormalizerStep::Kind form, std::string_view text);  // ICU

// ---- pre-tokenizers (pretokenize.cpp)
class Regex {  // PCRE2 (UTF + Unicode properties, JIT)
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Non-overlapping matches left to right as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;
  std::string pattern_;
};

struct PreTokStep {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind;
  enum Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  std::shared_ptr<const Regex> regex{};  // kSplit with a regex; else `literal`
  std::string literal{};
  Behavior behavior = kIsolated;
  bool invert = false;
  bool add_prefix_space = false, use_regex = false;  // kByteLevel
  std::string replacement{};                         // kMetaspace
  enum Prepend { kAlways, kNever, kFirst } prepend = kAlways;
  bool split = true;
};
// `first`: the fragment starts the input (Metaspace prepend_scheme "first").
std::vector<std::string> pre_tokenize(const std::vector<PreTokStep>& steps, std::string text, bool first);
// The regex set llama.cpp uses for a GGUF tokenizer.ggml.pre name; throws for unknown names.
std::vector<std::string> llama_cpp_pre_regexes(const std::string& pre);

// ---- vocabulary shared by the models
struct Vocab {
  std::vector<std::string> text;  // id -> token text as stored (byte-level or ▁-escaped)
  std::unordered_map<std::string, int32_t> ids;
  std::vector<float> scores;
  std::vector<int32_t> types;     // TokenType values; may be empty
  int32_t find(std::string_view s) const {
    auto it = ids.find(std::string(s));
    return it == ids.end() ? -1 : it->second;
  }
};

// ---- models
// Merge-rank BPE (HF "BPE", llama.cpp gpt2/gemma4): merges ranked by list order.
struct RankBpe {
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left id, right id) -> (rank, merged id)
  bool ignore_merges = false;   // a word that is itself a token is emitted whole
  bool byte_fallback = false;   // unknown char -> <0xXX> tokens
  bool fuse_unk = false;
  int32_t unk_id = -1;
  bool whole_newline_words = false;  // llama.cpp gemma4: a run of '\n' that is a token is kept whole
  void add_merge(const Vocab& v, const std::string& left, const std::string& right, int32_t rank);
  void encode(const Vocab& v, std::string_view word, std::vector<int32_t>& out) const;
};
// Score BPE (SentencePiece BPE, llama.cpp "llama"): repeatedly merge the adjacent pair whose
// concatenation is the highest-scoring token; leftovers fall back to <0xXX> byte tokens.
struct ScoreBpe {
  int32_t unk_id = -1;
  void encode(const Vocab& v, std::string_view text, std::vector<int32_t>& out) const;
};
// SentencePiece unigram: Viterbi over the pieces' log-probabilities.
struct Unigram {
  int32_t unk_id = -1;
  bool byte_fallback = false;
  float unk_penalty = 10.0f;
  void encode(const Vocab& v, std::string_view text, std::vector<int32_t>& out) const;
};

// ---- decoders (decode.cpp)
struct DecoderStep {
  enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
  std::string from{}, to{};  // kReplace; kMetaspace: from = replacement
  std::string content{};     // kStrip
  int start = 0, stop = 0;
  bool prepend_first = false;  // kMetaspace: strip the space it added in front
};
std::string run_decoders(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens,
                         bool strip_steps);

// ---- added / special tokens split out of the text before anything else
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false;
};

}  // namespace temper::tok

namespace temper {

struct TokenizerPipeline {
  TokenizerSource source = TokenizerSource::kHfJson;
  tok::Vocab vocab;
  std::vector<tok::AddedToken> added;
  std::vector<tok::NormalizerStep> normalizers;
  std::vector<tok::PreTokStep> pre;
  enum ModelKind { kRankBpe, kScoreBpe, kUnigram } model = kRankBpe;
  tok::RankBpe rank_bpe;
  tok::ScoreBpe score_bpe;
  tok::Unigram unigram;
  std::vector<tok::DecoderStep> decoders;
  // Added before/after the ids when add_special (HF TemplateProcessing or add_bos/add_eos).
  std::vector<int32_t> prefix_ids, suffix_ids;
  // SentencePiece / llama.cpp SPM: ' ' before a text fragment that starts the input or follows
  // a special token; `collapse_spaces` is SentencePiece's remove_extra_whitespaces.
  bool space_prefix_after_special = false, collapse_spaces = false;
  int32_t bos = -1, eos = -1;
  std::vector<int32_t> eog;

  // Trie over added-token contents for leftmost-longest matching.
  struct TrieNode {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t added_index = -1;
  };
  std::vector<TrieNode> trie;
  void build_trie();
  void encode_fragment(std::string text, bool first, bool after_special, std::vector<int32_t>& out) const;
};

// Builders (build_hf.cpp, build_native.cpp).
std::unique_ptr<TokenizerPipeline> build_hf_pipeline(const TokenizerAssets& a);
std::unique_ptr<TokenizerPipeline> build_sentencepiece_pipeline(const TokenizerAssets& a);
std::unique_ptr<TokenizerPipeline> build_gguf_pipeline(const TokenizerAssets& a);

}  // namespace temper
