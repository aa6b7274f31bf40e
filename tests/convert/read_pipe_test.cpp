// ReadPipe: the pieces it hands out are the tensors' exact bytes, in order, whatever the
// caller's piece sizes; it drops from the page cache what it brought in, and only that; a read
// that fails on the reader thread reaches the caller as an Error naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <span>

#include "core/error.h"
#include "core/json.h"
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

void read_all(ReadPipe& pipe, const std::vector<const TensorInfo*>& ts) {
  for (size_t i = 0; i < ts.size(); ++i)
    for (uint64_t off = 0; off < ts[i]->nbytes;) off += pipe.next(i, off, ts[i]->nbytes - off).size();
}

// A safetensors file of `n` F32 tensors of `floats` each (odd sizes put tensor boundaries
// inside pages and folios), flushed so that its pages can be dropped; false where they cannot.
bool write_clean_safetensors(const std::string& path, size_t n, size_t floats) {
  Json header = Json::object();
  const size_t bytes = floats * 4;
  for (size_t i = 0; i < n; ++i)
    header[cat("t", i)] = {{"dtype", "F32"}, {"shape", {floats}}, {"data_offsets", {i * bytes, (i + 1) * bytes}}};
  std::string data(n * bytes, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 2654435761u >> 24);
  test::write_file(path, test::safetensors_bytes(header.dump(), data));
  return test::make_pages_droppable(path);
}

TEST(ReadPipe, DropsFromThePageCacheOnlyWhatItBroughtIn) {
  test::TempDir d;
  const std::string file = d / "model.safetensors";
  if (!write_clean_safetensors(file, 8, (3u << 18) + 3)) GTEST_SKIP() << "no droppable page cache for " << d.path();
  MappedFile probe(file);
  // Opening reads the header, and the kernel reads ahead around it: drop that again, bar the
  // header's own pages, which the model's mapping holds.
  auto st = SafetensorsModel::open(file);
  const auto ts = all_tensors(*st);
  probe.uncache(0, probe.size());
  const double at_start = *probe.cached_fraction(0, probe.size());
  ASSERT_LT(at_start, 0.5);

  // Not cached at the start: what the pipe reads leaves the cache again, all of it, also the
  // folios across tensor boundaries and the partial last page.
  {
    ReadPipe pipe(*st, ts);
    read_all(pipe, ts);
  }
  EXPECT_LE(*probe.cached_fraction(0, probe.size()), at_start);

  // Cached at the start (someone is using the file): everything stays cached.
  std::vector<uint8_t> all(probe.size());
  probe.read_at(0, all, "warm-up");
  {
    ReadPipe pipe(*st, ts);
    read_all(pipe, ts);
  }
  EXPECT_EQ(*probe.cached_fraction(0, probe.size()), 1.0);
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
