// Text from a model (token pieces, prompts, GGUF strings) made safe to print on a terminal:
// control bytes, invalid UTF-8 and the characters that reorder or hide text cannot reach the
// terminal raw, and the escaped form still says which bytes were there.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace temper {

// Printable ASCII and valid UTF-8 are kept as they are; backslash becomes "\\", newline, tab
// and carriage return "\n" "\t" "\r", other C0 controls, DEL and every byte of an invalid or
// overlong UTF-8 sequence (or a surrogate) "\xNN"; C1 controls (U+0080-U+009F, which some
// terminals act on) and the bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069)
// "\u{NNNN}".
inline std::string escape_for_terminal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char buf[16];
  auto hex_byte = [&](uint8_t c) {
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  };
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
          if (c < 0x20 || c == 0x7f) hex_byte(c);
          else out += char(c);
      }
      ++i;
      continue;
    }
    // Length and minimum code point of the sequence a lead byte announces.
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const uint8_t cc = uint8_t(s[i + k]);
      ok = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3f);
    }
    ok = ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    if (!ok) {
      hex_byte(c);  // one byte at a time: the next byte may start a valid sequence
      ++i;
      continue;
    }
    if ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) {
      std::snprintf(buf, sizeof buf, "\\u{%04x}", unsigned(cp));
      out += buf;
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace temper
