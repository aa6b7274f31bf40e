// Helpers shared by the tests: fixture paths, scratch folders, running the temper binary.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace temper::test {

std::string fixtures_dir();                 // ../shared/fixtures
std::string fixture(const std::string& rel);  // fixtures_dir() + "/" + rel
std::string build_dir();
std::string source_dir();

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `<build>/temper args...` through /bin/sh (args are shell-quoted by the caller).
RunResult run_temper(const std::string& args);
// Runs an arbitrary shell command.
RunResult run_shell(const std::string& cmd);
// scripts/tiny_models.py's models (its --list): name -> config.json "architectures"[0]. Tests
// that cover every architecture iterate this list, so a new architecture's tiny model is
// picked up without editing them (tests/model/arch_registry_test checks every registered
// architecture has one).
std::vector<std::pair<std::string, std::string>> tiny_models();

void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
// A safetensors file's bytes: the 8-byte little-endian header length, the header, `data`.
std::string safetensors_bytes(const std::string& header, const std::string& data);
// Flushes the file, so that its pages in the page cache are clean and can be dropped; false
// where that cannot be arranged (the flush fails, or tmpfs, which has no page cache of its own).
bool make_pages_droppable(const std::string& path);

}  // namespace temper::test
