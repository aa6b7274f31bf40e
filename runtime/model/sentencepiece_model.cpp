// Protobuf wire-format decoding of sentencepiece.ModelProto (field numbers from Google's
// sentencepiece_model.proto). Unknown fields are skipped by wire type, as protobuf does.
#include "model/sentencepiece_model.h"

#include <cstring>

#include "core/error.h"

namespace temper {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Reads one message occupying [begin, end) of the file; offsets in errors are file offsets.
class WireReader {
 public:
  WireReader(std::string_view file, size_t begin, size_t end, const std::string& what)
      : file_(file), pos_(begin), end_(end), what_(what) {}

  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }

  // Returns (field number, wire type) of the next field.
  std::pair<uint32_t, uint32_t> tag() {
    const size_t at = pos_;
    const uint64_t t = varint();
    const uint64_t field = t >> 3;
    TEMPER_CHECK(field >= 1 && field <= 0x1FFFFFFF, what_, ": invalid protobuf field number ", field,
                 " at offset ", at);
    return {uint32_t(field), uint32_t(t & 7)};
  }

  uint64_t varint() {
    const size_t at = pos_;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      TEMPER_CHECK(pos_ < end_, what_, ": truncated varint at offset ", at);
      const uint8_t b = uint8_t(file_[pos_++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(what_, ": varint longer than 10 bytes at offset ", at);
  }

  float fixed32_float() {
    TEMPER_CHECK(end_ - pos_ >= 4, what_, ": truncated fixed32 at offset ", pos_, " (", end_ - pos_,
                 " bytes left)");
    uint32_t bits = 0;  // protobuf fixed32 is little-endian, as are the hosts temper supports
    std::memcpy(&bits, file_.data() + pos_, 4);
    pos_ += 4;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

  // Returns [begin, end) of a length-delimited payload and moves past it.
  std::pair<size_t, size_t> bytes() {
    const size_t at = pos_;
    const uint64_t len = varint();
    TEMPER_CHECK(len <= end_ - pos_, what_, ": length ", len, " at offset ", at, " runs past the end of its ",
                 "message (", end_ - pos_, " bytes left)");
    const size_t b = pos_;
    pos_ += size_t(len);
    return {b, pos_};
  }
  std::string string() {
    auto [b, e] = bytes();
    return std::string(file_.substr(b, e - b));
  }
  WireReader message() {
    auto [b, e] = bytes();
    return WireReader(file_, b, e, what_);
  }

  void skip(uint32_t wire_type, size_t tag_offset) {
    switch (wire_type) {
      case kVarint: varint(); return;
      case kFixed64:
        TEMPER_CHECK(end_ - pos_ >= 8, what_, ": truncated fixed64 at offset ", pos_);
        pos_ += 8;
        return;
      case kLengthDelimited: bytes(); return;
      case kFixed32:
        TEMPER_CHECK(end_ - pos_ >= 4, what_, ": truncated fixed32 at offset ", pos_);
        pos_ += 4;
        return;
      default:
        fail(what_, ": unsupported protobuf wire type ", wire_type, " at offset ", tag_offset);
    }
  }

  // Checks that a known field arrived with the wire type its declaration implies.
  void expect(uint32_t got, uint32_t want, uint32_t field, size_t tag_offset, const char* name) {
    TEMPER_CHECK(got == want, what_, ": field ", name, " (", field, ") has wire type ", got, ", expected ",
                 want, " at offset ", tag_offset);
  }

  const std::string& what() const { return what_; }

 private:
  std::string_view file_;
  size_t pos_, end_;
  const std::string& what_;
};

SentencePieceModel::Piece read_piece(WireReader r) {
  SentencePieceModel::Piece p;
  while (!r.done()) {
    const size_t at = r.pos();
    auto [field, wt] = r.tag();
    if (field == 1) {
      r.expect(wt, kLengthDelimited, field, at, "SentencePiece.piece");
      p.piece = r.string();
    } else if (field == 2) {
      r.expect(wt, kFixed32, field, at, "SentencePiece.score");
      p.score = r.fixed32_float();
    } else if (field == 3) {
      r.expect(wt, kVarint, field, at, "SentencePiece.type");
      const uint64_t t = r.varint();
      TEMPER_CHECK(t >= 1 && t <= 6, r.what(), ": piece type ", t, " at offset ", at, " is not one of 1..6");
      p.type = int32_t(t);
    } else {
      r.skip(wt, at);
    }
  }
  return p;
}

void read_trainer_spec(WireReader r, SentencePieceModel& m) {
  while (!r.done()) {
    const size_t at = r.pos();
    auto [field, wt] = r.tag();
    // int32 fields are varints; negative values (pad_id = -1) use all 10 bytes and truncate.
    // Copied into the lambda: clang < 16 cannot capture structured bindings.
    auto int32_field = [&, field = field, wt = wt](const char* name) {
      r.expect(wt, kVarint, field, at, name);
      return int32_t(uint32_t(r.varint()));
    };
    switch (field) {
      case 3: m.model_type = int32_field("TrainerSpec.model_type"); break;
      case 4: m.vocab_size = int32_field("TrainerSpec.vocab_size"); break;
      case 35: m.byte_fallback = int32_field("TrainerSpec.byte_fallback") != 0; break;
      case 40: m.unk_id = int32_field("TrainerSpec.unk_id"); break;
      case 41: m.bos_id = int32_field("TrainerSpec.bos_id"); break;
      case 42: m.eos_id = int32_field("TrainerSpec.eos_id"); break;
      case 43: m.pad_id = int32_field("TrainerSpec.pad_id"); break;
      default: r.skip(wt, at);
    }
  }
}

void read_normalizer_spec(WireReader r, SentencePieceModel& m) {
  while (!r.done()) {
    const size_t at = r.pos();
    auto [field, wt] = r.tag();
    auto bool_field = [&, field = field, wt = wt](const char* name) {
      r.expect(wt, kVarint, field, at, name);
      return r.varint() != 0;
    };
    switch (field) {
      case 1:
        r.expect(wt, kLengthDelimited, field, at, "NormalizerSpec.name");
        m.normalizer_name = r.string();
        break;
      case 3: m.add_dummy_prefix = bool_field("NormalizerSpec.add_dummy_prefix"); break;
      case 4: m.remove_extra_whitespaces = bool_field("NormalizerSpec.remove_extra_whitespaces"); break;
      case 5: m.escape_whitespaces = bool_field("NormalizerSpec.escape_whitespaces"); break;
      default: r.skip(wt, at);
    }
  }
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& what) {
  SentencePieceModel m;
  WireReader r(bytes, 0, bytes.size(), what);
  while (!r.done()) {
    const size_t at = r.pos();
    auto [field, wt] = r.tag();
    switch (field) {
      case 1:
        r.expect(wt, kLengthDelimited, field, at, "ModelProto.pieces");
        m.pieces.push_back(read_piece(r.message()));
        break;
      case 2:
        r.expect(wt, kLengthDelimited, field, at, "ModelProto.trainer_spec");
        read_trainer_spec(r.message(), m);
        break;
      case 3:
        r.expect(wt, kLengthDelimited, field, at, "ModelProto.normalizer_spec");
        read_normalizer_spec(r.message(), m);
        break;
      default: r.skip(wt, at);
    }
  }
  TEMPER_CHECK(!m.pieces.empty(), what, ": no pieces (not a SentencePiece model?)");
  for (size_t i = 0; i < m.pieces.size(); ++i)
    TEMPER_CHECK(!m.pieces[i].piece.empty(), what, ": piece ", i, " is empty");
  return m;
}

}  // namespace temper
