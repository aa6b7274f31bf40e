// ReadPipe: the pieces it hands out are the tensors' exact bytes, in order, whatever the
// caller's piece sizes; a read that fails on the reader thread reaches the caller as an Error
// naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <span>

#include "core/error.h"
#include "formats/safetensors.h"
#include "read_pipe.h"
#include "util/test_util.h"

namespace temper {
namespace {

std::vector<const TensorInfo*> all_tensors(const SafetensorsModel& st) {
  std::vector<const TensorInfo*> ts;
  for (const auto& t : st.tensors()) ts.push_back(&t);
  return ts;
}

TEST(ReadPipe, PiecesAreTheTensorsBytesInOrder) {
  auto st = SafetensorsModel::open(test::fixture("model/stories260K-hf-f32"));
  const auto ts = all_tensors(*st);
  ReadPipe pipe(*st, ts);
  std::vector<uint8_t> scratch;
  uint64_t max_len = 1;  // varied piece sizes, so that pieces straddle the pipe's own
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto want = st->read(*ts[i], scratch);
    std::vector<uint8_t> got;
    while (got.size() < want.size()) {
      max_len = max_len * 7 % 100003 + 1;
      const auto piece = pipe.next(i, got.size(), std::min<uint64_t>(max_len, want.size() - got.size()));
      ASSERT_FALSE(piece.empty());
      got.insert(got.end(), piece.begin(), piece.end());
    }
    ASSERT_EQ(got.size(), want.size()) << ts[i]->name;
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << ts[i]->name;
  }
  EXPECT_THROW(pipe.next(ts.size(), 0, 1), Error);  // nothing after the last tensor
}

TEST(ReadPipe, OutOfOrderRequestIsAnError) {
  auto st = SafetensorsModel::open(test::fixture("model/stories260K-hf-f32"));
  ReadPipe pipe(*st, all_tensors(*st));
  EXPECT_THROW(pipe.next(0, 4, 1), Error);
}

TEST(ReadPipe, ReadFailureOnTheReaderThreadReachesTheCaller) {
  test::TempDir d;
  const std::string file = d / "model.safetensors";
  std::filesystem::copy_file(test::fixture("model/stories260K-hf-f32/model.safetensors"), file);
  auto st = SafetensorsModel::open(file);
  std::filesystem::resize_file(file, 1000);  // shrinks under the open model: pread finds the end
  const auto ts = all_tensors(*st);
  try {
    ReadPipe pipe(*st, ts);
    for (size_t i = 0; i < ts.size(); ++i)
      for (uint64_t off = 0; off < ts[i]->nbytes;) off += pipe.next(i, off, ts[i]->nbytes - off).size();
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shrank"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace temper
