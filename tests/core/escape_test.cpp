// escaped(): file text in messages cannot break lines, drive the terminal or carry invalid UTF-8.
#include "core/escape.h"

#include <gtest/gtest.h>

namespace temper {
namespace {

TEST(Escaped, PlainTextAndValidUtf8PassUnchanged) {
  EXPECT_EQ(escaped("model.layers.0.self_attn.q_proj.weight"), "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(escaped("\xE2\x96\x81the caf\xC3\xA9 \xF0\x9F\x98\x80"), "\xE2\x96\x81the caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(Escaped, ControlCharactersBecomeVisible) {
  EXPECT_EQ(escaped("a\nb\r\tc"), "a\\nb\\r\\tc");
  EXPECT_EQ(escaped("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(escaped(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(escaped("del\x7f"), "del\\x7f");
  EXPECT_EQ(escaped("back\\slash"), "back\\\\slash");  // so that "\x1b" in a name is not taken for ESC
  // C1 controls: U+009B is CSI on terminals that take 8-bit controls; U+0085 is NEL (a newline).
  EXPECT_EQ(escaped("\xC2\x9B" "31m\xC2\x85"), "\\xc2\\x9b31m\\xc2\\x85");
  EXPECT_EQ(escaped("\xC2\xA0"), "\xC2\xA0");  // U+00A0 is not a control
}

TEST(Escaped, InvalidUtf8BecomesHexBytes) {
  EXPECT_EQ(escaped("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escaped("\xC3"), "\\xc3");                      // truncated sequence
  EXPECT_EQ(escaped("\xC0\xAF"), "\\xc0\\xaf");             // overlong '/'
  EXPECT_EQ(escaped("\xED\xA0\x80"), "\\xed\\xa0\\x80");    // surrogate U+D800
  EXPECT_EQ(escaped("\xF4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // beyond U+10FFFF
  EXPECT_EQ(escaped("\xE2\x96x"), "\\xe2\\x96x");
}

TEST(Escaped, LongTextIsCut) {
  const std::string s = escaped(std::string(1000, 'a'), 10);
  EXPECT_EQ(s, "aaaaaaaaaa...");
  EXPECT_EQ(escaped("\xC3\xA9\xC3\xA9\xC3\xA9", 3), "\xC3\xA9\xC3\xA9...");  // never inside a character
}

}  // namespace
}  // namespace temper
