// TokenizerAssets: everything a model folder says about its tokenizer, parsed into typed
// fields (vocabulary, scores, token types, merges, special ids) and kept raw as well, so that
// the tokenizer can be rebuilt exactly from the checkpoint or from GGUF metadata.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace temper {

// Token types as llama.cpp/GGUF number them (tokenizer.ggml.token_type).
enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct TokenizerAssets {
  // "sentencepiece" (tokenizer.model), "bpe" (tokenizer.json BPE), "unigram" or "wordpiece".
  std::string kind;
  // GGUF tokenizer.ggml.model ("llama", "gpt2", "gemma4") and .pre ("default", "llama-bpe",
  // "qwen2", ...), chosen as llama.cpp's converter would.
  std::string gguf_model, gguf_pre;
  std::vector<std::string> tokens;   // index = token id
  // Same length as tokens. llama.cpp writes no tokenizer.ggml.scores when gguf_model is "gpt2"
  // (its loader then uses 0 for every token); here they are 0.0 so the length still matches,
  // and the GGUF exporter should leave the key out for "gpt2".
  std::vector<float> scores;
  std::vector<int32_t> token_types;  // TokenType values, same length as tokens
  // "left right", with a literal space inside a part written as U+0120. Filled only where
  // llama.cpp's converter writes tokenizer.ggml.merges ("gpt2" and "gemma4"); empty otherwise.
  std::vector<std::string> merges;
  // -1 = none. eot/eom are found by their text (<|eot_id|>, <end_of_turn>, <turn|>, <|im_end|>;
  // <|eom_id|>); llama.cpp's loader finds them the same way when the GGUF does not name them.
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1, eot_id = -1, eom_id = -1;
  // Effective flags: what the source files say, else what llama.cpp's loader would assume for
  // this tokenizer (add_bos true for SentencePiece, "llama-bpe" and "gemma4"), so writing them
  // always gives the same behaviour as llama.cpp's converter output.
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  std::vector<int32_t> eog_ids;      // every id that ends a turn (eos, eot, <end_of_turn>, ...)

  // The source files, byte for byte ("" when absent).
  std::string tokenizer_json, tokenizer_model, tokenizer_config_json, special_tokens_map_json;
};

// Reads tokenizer.json / tokenizer.model / tokenizer_config.json / special_tokens_map.json /
// config.json / generation_config.json from `dir`. Throws Error naming the file and key at
// fault; a folder with neither tokenizer.json nor tokenizer.model is an error.
//
// Which file, as llama.cpp's converter chooses: tokenizer.model (SentencePiece) when present,
// else tokenizer.json. A tokenizer.json BPE with byte_fallback becomes gguf_model "llama"
// (SPM-style, scores -1000); a byte-level BPE becomes "gpt2" with gguf_pre picked by hashing its
// Split regexes (Ollama's table); an unknown hash is an error naming the file and the hash.
//
// `arch_id` (registry id; "" when unknown) applies the per-architecture choices of the
// converter: "gemma4" always reads tokenizer.json, sets gguf_model "gemma4" with no pre
// (gguf_pre ""), forces the chat-parser tokens (<|channel>, <|tool_call>, ...) to
// USER_DEFINED and add_bos true; ids starting with "gemma" set add_space_prefix false.
//
// `max_vocab` (> 0: the model's n_vocab, i.e. its embedding rows) bounds the vocabulary: a
// token id or a padded size beyond it is an error, raised before any padding is allocated.
TokenizerAssets load_tokenizer_assets(const std::string& dir, std::string_view arch_id = {}, int64_t max_vocab = 0);

}  // namespace temper
