// Test helper: writes N bytes through AtomicOutput and commits; used with `ulimit -f` to
// check that a full disk is reported as an error and leaves no file behind.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "core/file.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  try {
    temper::AtomicOutput out(argv[1], false);
    std::vector<char> buf(size_t(std::atoll(argv[2])), 'x');
    out.write(buf.data(), buf.size());
    out.commit();
  } catch (const temper::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
