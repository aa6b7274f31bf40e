// Malformed GGUF files, assembled byte by byte: each must be refused with an Error naming the
// file and the field or offset at fault, never a crash or a huge allocation (run under ASan too).
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "formats/gguf_bytes.h"
#include "util/test_util.h"

namespace temper {
namespace {

using test::Bytes;
using test::valid_file;

class GgufBad : public ::testing::Test {
 protected:
  test::TempDir dir_;
  std::string path_ = dir_ / "bad.gguf";

  // Writes `bytes` and expects the reader to refuse them with a message holding the file path
  // and every string in `parts`.
  void expect_refused(const std::string& bytes, std::initializer_list<std::string> parts) {
    test::write_file(path_, bytes);
    try {
      GgufFile g(path_);
      ADD_FAILURE() << "accepted a malformed file";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path_), std::string::npos) << msg;
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << "\n  lacks: " << p;
    }
  }
};

TEST_F(GgufBad, ValidBaseFileLoads) {
  for (uint32_t version : {2u, 3u}) {
    test::write_file(path_, valid_file(version).b);
    GgufFile g(path_);
    EXPECT_EQ(g.version(), version);
    EXPECT_EQ(g.get_i32_array("tokenizer.ggml.token_type"), (std::vector<int32_t>{1, 2, 3}));
    ASSERT_EQ(g.tensors().size(), 2u);
    EXPECT_EQ(g.tensors()[0].shape, (std::vector<int64_t>{2, 3}));
  }
}

TEST_F(GgufBad, BadMagicAndVersions) {
  Bytes f = valid_file();
  std::string s = f.b;
  s[3] = 'L';
  expect_refused(s, {"magic is 'GGUL'", "offset 0"});
  expect_refused("GG", {"magic", "needs 4 bytes"});
  expect_refused(valid_file(1).b, {"version 1", "offset 4"});
  expect_refused(valid_file(4).b, {"version 4", "offset 4"});
  expect_refused(valid_file(0).b, {"version 0"});
  expect_refused(valid_file(__builtin_bswap32(3)).b, {"big-endian GGUF is not supported", "offset 4"});
}

TEST_F(GgufBad, EveryTruncationIsRefused) {
  const std::string full = valid_file().b;
  // The last tensor's trailing padding is optional (not all writers add it); any cut before the
  // end of its data must fail cleanly.
  const size_t data_end = full.size() - 30;
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    test::write_file(path_, full.substr(0, n));
    if (n < data_end) {
      EXPECT_THROW(GgufFile g(path_), Error);
    } else {
      EXPECT_NO_THROW(GgufFile g(path_));
    }
  }
}

TEST_F(GgufBad, HugeCountsAreRefusedBeforeAllocating) {
  expect_refused(Bytes().header(0, uint64_t(1) << 60).b, {"KV count 1152921504606846976", "offset 16"});
  expect_refused(Bytes().header(~uint64_t(0), 0).b, {"tensor count", "offset 8"});
  expect_refused(Bytes().header(0, 1).u64(uint64_t(1) << 62).zeros(16).b, {"KV 0", "needs 4611686018427387904 bytes", "offset 32"});
  expect_refused(Bytes().header(0, 1).str("k").u32(8).u64(~uint64_t(0)).b, {"KV 0 'k'", "string value", "offset 45"});
  expect_refused(Bytes().header(0, 1).str("k").u32(9).u32(4).u64(uint64_t(1) << 61).zeros(64).b,
                 {"'k'", "array of 2305843009213693952 u32 elements", "offset 41"});
  expect_refused(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(uint64_t(1) << 40).str("x").b,
                 {"'k'", "string elements cannot fit"});
  // A string array whose count fits but whose strings run past the end.
  expect_refused(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(2).str("a").u64(1000).b,
                 {"'k'", "array element", "needs 1000 bytes"});
}

TEST_F(GgufBad, BadKvs) {
  expect_refused(Bytes().header(0, 1).str("k").u32(9).u32(9).u64(1).b, {"'k'", "nested arrays", "offset 37"});
  expect_refused(Bytes().header(0, 1).str("k").u32(13).u32(0).b, {"'k'", "invalid value type 13", "offset 33"});
  expect_refused(Bytes().header(0, 1).str("k").u32(9).u32(0xFFFFFFFF).u64(0).b, {"'k'", "invalid array element type -1"});
  expect_refused(Bytes().header(0, 2).kv_u32("k", 1).kv_u32("k", 2).b, {"KV 1 'k'", "duplicate key", "offset 41"});
  expect_refused(Bytes().header(0, 1).kv_u32("", 1).b, {"KV 0", "empty key", "offset 24"});
  expect_refused(Bytes().header(0, 1).str("flag").u32(7).put(uint8_t(2)).b, {"'flag'", "bool value 2", "offset 40"});
}

TEST_F(GgufBad, BadAlignment) {
  expect_refused(Bytes().header(0, 1).str("general.alignment").u32(10).u64(32).b,
                 {"general.alignment", "must be of type u32 but is u64", "offset 24"});
  expect_refused(Bytes().header(0, 1).str("general.alignment").u32(9).u32(4).u64(1).u32(32).b,
                 {"general.alignment", "array[u32]"});
  expect_refused(Bytes().header(0, 1).kv_u32("general.alignment", 48).b, {"alignment 48 is not a power of two"});
  expect_refused(Bytes().header(0, 1).kv_u32("general.alignment", 0).b, {"alignment 0 is not a power of two"});
  // A valid custom alignment is honoured.
  Bytes ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {2}, 0, 0).pad(64).zeros(8);
  test::write_file(path_, ok.b);
  GgufFile g(path_);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.data_offset(), 128u);
}

TEST_F(GgufBad, BadTensorInfos) {
  auto one = [](std::string_view name, std::vector<int64_t> ne, uint32_t type, uint64_t offset = 0) {
    return Bytes().header(1, 0).tensor(name, ne, type, offset).pad().zeros(4096).b;
  };
  expect_refused(one(std::string(64, 'n'), {4}, 0), {"tensor 0 '" + std::string(64, 'n') + "'", "64 bytes, at most 63", "offset 24"});
  EXPECT_NO_THROW({
    test::write_file(path_, one(std::string(63, 'n'), {4}, 0));
    GgufFile g(path_);
  });
  expect_refused(one("", {4}, 0), {"tensor 0", "empty tensor name"});
  expect_refused(Bytes().header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64).b,
                 {"tensor 1 't'", "duplicate tensor name", "offset 57"});
  expect_refused(one("t", {}, 0), {"'t'", "n_dims is 0", "offset 33"});
  expect_refused(one("t", {1, 1, 1, 1, 1}, 0), {"'t'", "n_dims is 5"});
  expect_refused(one("t", {4, -2}, 0), {"'t'", "ne[1] is negative (-2)", "offset 45"});
  expect_refused(one("t", {int64_t(1) << 32, int64_t(1) << 31}, 0), {"'t'", "overflows at ne[1]"});
  expect_refused(one("t", {4}, 4), {"'t'", "ggml type id 4 is unknown", "offset 45"});
  expect_refused(one("t", {4}, 99), {"'t'", "ggml type id 99"});
  expect_refused(one("t", {33}, 8), {"'t'", "ne[0] = 33 is not a multiple of the q8_0 block size 32"});
  expect_refused(one("t", {256}, 12, 32), {"'t'", "data offset is 32, expected 0"});
}

TEST_F(GgufBad, BadDataLayout) {
  auto two = [](uint64_t off_a, uint64_t off_b, size_t data) {
    return Bytes().header(2, 0).tensor("a", {6}, 0, off_a).tensor("b", {8}, 0, off_b).pad().zeros(data).b;
  };
  EXPECT_NO_THROW({
    test::write_file(path_, two(0, 32, 64));
    GgufFile g(path_);
  });
  // "b"'s offset field is the last 8 bytes of its info record: 24 + 33 + 33 - 8.
  expect_refused(two(0, 24, 64), {"tensor 1 'b'", "offset is 24, expected 32", "offset 82"});  // misaligned
  expect_refused(two(0, 64, 128), {"'b'", "offset is 64, expected 32"});                       // gap
  expect_refused(two(32, 0, 64), {"tensor 0 'a'", "offset is 32, expected 0"});                 // out of order
  expect_refused(two(0, 32, 50), {"'b'", "extends past the end of the file"});                  // data past EOF
  // The data section itself would start past the end of the file.
  expect_refused(Bytes().header(1, 0).tensor("z", {0}, 0, 0).b, {"data section would start at 64"});
}

// Issue 15: names from the file reached the message raw (a newline split it, ESC drove the
// terminal, invalid UTF-8 reached it as is).
TEST_F(GgufBad, NamesInMessagesAreEscaped) {
  const std::string key = "k\n\x1b[2J\xff";
  test::write_file(path_, Bytes().header(0, 2).kv_u32(key, 1).kv_u32(key, 2).b);
  try {
    GgufFile g(path_);
    ADD_FAILURE() << "accepted a duplicate key";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'k\\n\\x1b[2J\\xff'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find_first_of("\n\x1b\xff"), std::string::npos) << msg;
  }
  expect_refused(Bytes().header(2, 0).tensor("t\r\x07", {1}, 0, 0).tensor("t\r\x07", {1}, 0, 32).b,
                 {"'t\\r\\x07'", "duplicate tensor name"});
}

}  // namespace
}  // namespace temper
