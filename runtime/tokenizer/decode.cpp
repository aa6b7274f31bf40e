// Decoder steps of tokenizer.json (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace),
// applied in order to the list of token strings, as HF tokenizers' decode_chain does.
#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper::tok {

namespace {
// "<0xAB>" -> 0xAB; -1 when the token is not a byte token.
int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}
}  // namespace

std::string run_decoders(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens, bool strip_steps) {
  for (const DecoderStep& s : steps) {
    switch (s.kind) {
      case DecoderStep::kByteLevel: {
        std::string joined;
        for (const std::string& t : tokens)
          for (std::string_view ch : utf8_chars(t)) {
            const int b = unicode_to_byte(ch);
            if (b >= 0) joined += static_cast<char>(b);
            else joined += ch;  // not a byte stand-in (e.g. an added token's own text)
          }
        tokens.assign(1, std::move(joined));
        break;
      }
      case DecoderStep::kReplace:
        for (std::string& t : tokens) replace_all(t, s.from, s.to);
        break;
      case DecoderStep::kByteFallback: {
        // Runs of byte tokens become their bytes (left as raw bytes: no UTF-8 repair, so a
        // multi-byte character split across tokens survives token_to_piece streaming).
        for (std::string& t : tokens)
          if (int b = byte_token_value(t); b >= 0) t.assign(1, static_cast<char>(b));
        break;
      }
      case DecoderStep::kFuse: {
        std::string joined;
        for (const std::string& t : tokens) joined += t;
        tokens.assign(1, std::move(joined));
        break;
      }
      case DecoderStep::kStrip: {
        if (!strip_steps) break;
        for (std::string& t : tokens) {
          for (int i = 0; i < s.start && t.compare(0, s.content.size(), s.content) == 0 && !s.content.empty(); ++i)
            t.erase(0, s.content.size());
          for (int i = 0; i < s.stop && t.size() >= s.content.size() && !s.content.empty() &&
                          t.compare(t.size() - s.content.size(), s.content.size(), s.content) == 0;
               ++i)
            t.erase(t.size() - s.content.size());
        }
        break;
      }
      case DecoderStep::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          replace_all(tokens[i], s.from, " ");
          if (i == 0 && s.prepend_first && strip_steps && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace temper::tok
