// Every kind of .h5 temper writes (issue 15): a converted checkpoint, a LoRA adapter from
// `temper train`, a training checkpoint (--save-every) and a compare base reference
// (--save-base). Each must be in HDF5's checksummed 1.10 format (superblock version >= 2,
// read from the file's first bytes), hold no variable-length data (whose global heap has no
// checksum), and read in full with h5py (tests/scripts/h5py_read_all.py, no temper code).
#include <gtest/gtest.h>

#include <memory>

#include "core/error.h"
#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {

constexpr const char* kStories = "Once upon a time there was a little dog. The dog liked to play in the park.";

class H5Files : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::TempDir>();
    const test::TempDir& d = *dir_;
    const std::string model = test::source_dir() + "/sample/stories260K";
    std::string jsonl;
    for (int i = 0; i < 4; ++i) jsonl += Json({{"text", kStories}}).dump() + "\n";
    test::write_file(d / "data.jsonl", jsonl);
    auto r = test::run_temper("convert " + model + " -o " + d / "m.h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = test::run_temper("--threads 2 train " + model + " --data " + d / "data.jsonl" + " -o " + d / "a.h5" +
                         " --steps 2 --save-every 1 --rank 2 --alpha 4 --batch 1 --seq 16 --seed 1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = test::run_temper("compare " + d / "m.h5" + " --text " + test::source_dir() +
                         "/sample/tinystories_sample.txt --ctx 32 --max-tokens 64 --save-base " + d / "ref.h5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { dir_.reset(); }

  // The file's superblock version byte (after the 8-byte signature), and h5py's account of it.
  static void check(const std::string& name, const char* must_hold) {
    const std::string path = *dir_ / name;
    const std::string bytes = test::read_file(path);
    ASSERT_GT(bytes.size(), 9u) << path;
    ASSERT_EQ(bytes.substr(0, 8), std::string("\x89HDF\r\n\x1a\n", 8)) << path;
    EXPECT_GE(int(uint8_t(bytes[8])), 2) << path << ": superblock version without checksums";
    EXPECT_EQ(bytes.find("GCOL"), std::string::npos) << path << ": holds a global heap (variable-length data)";
    const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() +
                                   "/tests/scripts/h5py_read_all.py " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Json j = Json::parse(r.out);
    EXPECT_EQ(j["superblock"].get<int>(), int(uint8_t(bytes[8])));
    EXPECT_TRUE(j["variable_length"].empty()) << path << ": " << j["variable_length"].dump();
    EXPECT_GT(j["datasets"].get<int>(), 2) << r.out;
    EXPECT_GT(j["strings"].get<int>(), 2) << r.out;  // string values decoded as UTF-8
    EXPECT_NE(bytes.find(must_hold), std::string::npos) << path << " does not hold '" << must_hold << "'";
  }

  static inline std::unique_ptr<test::TempDir> dir_;
};

TEST_F(H5Files, ConvertedCheckpoint) {
  check("m.h5", "temper-checkpoint");
  // The checkpoint's own independent reader (every documented field) still reads it.
  const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() +
                                 "/tests/scripts/h5py_read_checkpoint.py " + *dir_ / "m.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["tokenizer"]["tokens"].size(), 512u);
  EXPECT_EQ(j["format"], "temper-checkpoint");
}
TEST_F(H5Files, TrainedAdapter) { check("a.h5", "temper-lora"); }
TEST_F(H5Files, TrainingCheckpoint) { check("a.ckpt.h5", "adam_m"); }
TEST_F(H5Files, CompareBaseReference) { check("ref.h5", "temper-compare-base"); }

}  // namespace
}  // namespace temper
