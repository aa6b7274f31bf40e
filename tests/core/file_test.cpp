// MappedFile bounds checks and page-cache residency queries, and AtomicOutput's
// no-half-written-output guarantee.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "util/test_util.h"

namespace temper {
namespace {

TEST(MappedFile, SpanIsBoundsChecked) {
  test::TempDir d;
  test::write_file(d / "f", "0123456789");
  MappedFile f(d / "f");
  EXPECT_EQ(f.size(), 10u);
  EXPECT_EQ(f.span(2, 3, "x")[0], '2');
  EXPECT_THROW(f.span(8, 3, "x"), Error);
  EXPECT_THROW(f.span(~0ull, 2, "x"), Error);  // offset + len overflows
  try {
    f.span(11, 0, "the header");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the header"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(d / "f"), std::string::npos);
  }
  EXPECT_THROW(MappedFile(d / "missing"), Error);
  EXPECT_THROW(MappedFile(d.path()), Error);  // a directory
}

TEST(MappedFile, ReportsAndDropsPageCacheResidency) {
  test::TempDir d;
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t size = 64 * page + 100;  // a partial last page
  test::write_file(d / "f", std::string(size, 'x'));
  if (!test::make_pages_droppable(d / "f")) GTEST_SKIP() << "no droppable page cache for " << d.path();
  MappedFile f(d / "f");
  ASSERT_TRUE(f.cached_fraction(0, size).has_value());  // the file is ours: the kernel tells
  f.uncache(0, size);
  EXPECT_EQ(*f.cached_fraction(0, size), 0.0);

  std::vector<uint8_t> buf(4 * page);
  f.read_at(0, buf, "x");
  EXPECT_EQ(*f.cached_fraction(0, 4 * page), 1.0);
  EXPECT_EQ(*f.cached_fraction(page + 7, 2), 1.0);  // the pages holding the bytes, not whole pages
  // Pages outside the range stay. (Which pages inside it go depends on the folios the kernel
  // read them into, up to 2 MiB each: only a range that covers whole folios is sure to go.)
  f.uncache(2 * page, size - 2 * page);
  EXPECT_EQ(*f.cached_fraction(0, 2 * page), 1.0);

  // A range reaching the end of the file takes the partial last page too.
  f.read_at(size - 200, std::span(buf).first(200), "x");
  EXPECT_EQ(*f.cached_fraction(size - 1, 1), 1.0);
  f.uncache(0, size);
  EXPECT_EQ(*f.cached_fraction(0, size), 0.0);
  EXPECT_FALSE(f.cached_fraction(size, 1).has_value());  // nothing there to ask about
}

TEST(AtomicOutput, AppearsOnlyOnCommit) {
  test::TempDir d;
  const std::string out = d / "out.bin";
  {
    AtomicOutput o(out, false);
    o.write("abc", 3);
    EXPECT_FALSE(file_exists(out));
    EXPECT_TRUE(file_exists(o.temp_path()));
    o.commit();
  }
  EXPECT_EQ(test::read_file(out), "abc");
  std::string temp;
  {
    AtomicOutput o(out, true);
    temp = o.temp_path();
    o.write("partial", 7);
  }  // abandoned: the old output stays, the temp file is gone
  EXPECT_EQ(test::read_file(out), "abc");
  EXPECT_FALSE(file_exists(temp));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.path()), {}), 1);
}

TEST(AtomicOutput, RefusesExistingOutputAndInputs) {
  test::TempDir d;
  test::write_file(d / "in", "x");
  EXPECT_THROW(AtomicOutput(d / "in", false), Error);  // exists, no --force
  const std::string inputs[] = {d / "in"};
  EXPECT_THROW(AtomicOutput(d / "in", true, inputs), Error);  // never overwrite an input
  EXPECT_THROW(AtomicOutput(d / "nodir/out", false), Error);
  EXPECT_THROW(AtomicOutput(d / "in/out", false), Error);  // parent is a file
  // Permission bits do not stop root (CI runs as root), so only check them for other users.
  if (geteuid() != 0) {
    chmod(d.path().c_str(), 0500);
    EXPECT_THROW(AtomicOutput(d / "out", false), Error);
    chmod(d.path().c_str(), 0700);
  }
}

TEST(AtomicOutput, DiskFullIsAnErrorAndLeavesNothing) {
  // A child process with a 64 KiB file-size limit writes 1 MiB: the write must fail cleanly.
  test::TempDir d;
  auto r = test::run_shell("ulimit -f 64; trap '' XFSZ; " + test::build_dir() + "/tests/atomic_write_probe " +
                           (d / "big.bin") + " 1048576");
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("write failed"), std::string::npos) << r.err;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.path()), {}), 0);
}

}  // namespace
}  // namespace temper
