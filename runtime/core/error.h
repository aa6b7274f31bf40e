// temper::Error, the one exception type, and the checks that throw it.
// Errors are thrown at I/O and parse boundaries and carry the file, tensor, key or offset at
// fault; main() prints the message on one line and exits non-zero. Kernels never throw.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace temper {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates anything streamable: cat("tensor '", name, "' has ", n, " dims").
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

}  // namespace temper

// Always on, also in Release: for conditions that depend on input.
#define TEMPER_CHECK(cond, ...)                 \
  do {                                          \
    if (!(cond)) ::temper::fail(__VA_ARGS__);   \
  } while (0)
