// Tokenizer: text <-> token ids, built from TokenizerAssets alone, with either the Hugging Face
// semantics of tokenizer.json, SentencePiece's semantics of tokenizer.model, or llama.cpp's
// semantics of the GGUF tokenizer.ggml.* fields (model "llama" / "gpt2" + pre / "gemma4").
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer_assets.h"

namespace temper {

// Which description of the tokenizer to follow. kAuto: tokenizer.json when present (what
// transformers' fast tokenizer runs), else tokenizer.model, else the typed GGUF fields.
// kGguf reproduces llama.cpp's tokenizer for a GGUF written from these assets.
enum class TokenizerSource { kAuto, kHfJson, kSentencePiece, kGguf };

struct TokenizerPipeline;  // internal (tokenizer_impl.h)

class Tokenizer {
 public:
  // Throws Error naming the file/key at fault or the unsupported component (e.g. a normalizer
  // type, a GGUF pre name without a known regex set).
  static Tokenizer from_assets(const TokenizerAssets& assets,
                               TokenizerSource source = TokenizerSource::kAuto);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special: add BOS/EOS as the tokenizer says (HF post-processor, or add_bos/add_eos).
  // parse_special: special/control tokens written in the text become their ids; otherwise
  // only non-special added (user-defined) tokens are split out, as HF and llama.cpp do.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;
  // The text of `ids`, special tokens included as their text (HF decode with
  // skip_special_tokens=False). Bytes are returned as decoded (no UTF-8 repair).
  std::string decode(std::span<const int32_t> ids) const;
  // The bytes one token stands for (no leading-space stripping); "" for an id out of range.
  std::string token_to_piece(int32_t id) const;

  int32_t bos() const;
  int32_t eos() const;
  bool is_eog(int32_t id) const;
  size_t n_vocab() const;
  // -1 when the text is not exactly one token of the vocabulary (or added tokens).
  int32_t token_id(std::string_view text) const;
  // Which semantics this instance follows (never kAuto).
  TokenizerSource source() const;

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerPipeline> p);
  std::unique_ptr<TokenizerPipeline> p_;
};

// Encodes every string (for parity runs against other implementations).
std::vector<std::vector<int32_t>> encode_all(const Tokenizer& tok, std::span<const std::string> texts,
                                             bool add_special, bool parse_special);

}  // namespace temper
