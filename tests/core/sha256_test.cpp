// SHA-256 against FIPS 180-4 test vectors and the system's sha256sum.
#include <gtest/gtest.h>

#include <string>

#include "core/sha256.h"
#include "util/test_util.h"

namespace temper {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, AgreesWithSha256sumOnAFixture) {
  const std::string path = test::fixture("model/stories260K-hf-f32/config.json");
  auto r = test::run_shell("sha256sum '" + path + "' | cut -d' ' -f1");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(sha256_hex(test::read_file(path)) + "\n", r.out);
}

}  // namespace
}  // namespace temper
