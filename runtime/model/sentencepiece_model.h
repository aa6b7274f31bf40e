// A minimal reader for SentencePiece's tokenizer.model (a serialized sentencepiece.ModelProto):
// pieces with scores and types, and the trainer/normalizer settings a tokenizer needs. Only
// the protobuf wire format is decoded; every length is checked against the buffer.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace temper {

struct SentencePieceModel {
  // ModelProto.SentencePiece.Type: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED,
  // 6 BYTE (the same numbers GGUF uses for tokenizer.ggml.token_type).
  struct Piece {
    std::string piece;
    float score = 0;
    int32_t type = 1;
  };
  std::vector<Piece> pieces;

  // TrainerSpec (proto2 defaults where the field is absent).
  int32_t model_type = 1;  // 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
  int32_t vocab_size = 8000;
  bool byte_fallback = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;

  // NormalizerSpec.
  std::string normalizer_name;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};

// Parses `bytes`; throws Error naming `what` (the file) and the byte offset at fault for a
// truncated or malformed message, an unsupported wire type, or a piece type outside 1..6.
SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& what);

}  // namespace temper
