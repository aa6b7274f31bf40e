#include "util/test_util.h"

#include <fcntl.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace temper::test {
namespace fs = std::filesystem;

std::string fixtures_dir() { return TEMPER_FIXTURES; }
std::string fixture(const std::string& rel) { return fixtures_dir() + "/" + rel; }
std::string build_dir() { return TEMPER_BUILD_DIR; }
std::string source_dir() { return TEMPER_SOURCE_DIR; }

TempDir::TempDir() {
  std::random_device rd;
  path_ = (fs::temp_directory_path() / ("temper-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()))).string();
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

RunResult run_shell(const std::string& cmd) {
  TempDir d;
  const std::string out = d / "out", err = d / "err";
  const std::string full = "(" + cmd + ") >" + out + " 2>" + err + " </dev/null";
  int status = std::system(full.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

RunResult run_temper(const std::string& args) { return run_shell(build_dir() + "/temper " + args); }

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + path);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(uint64_t(header.size()) >> (8 * i));
  return out + header + data;
}

bool make_pages_droppable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  struct statfs fs {};
  constexpr long kTmpfsMagic = 0x01021994;
  const bool ok = ::fsync(fd) == 0 && fstatfs(fd, &fs) == 0 && fs.f_type != kTmpfsMagic;
  ::close(fd);
  return ok;
}

std::vector<std::pair<std::string, std::string>> tiny_models() {
  const RunResult r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/scripts/tiny_models.py --list");
  if (r.exit_code != 0) throw std::runtime_error("scripts/tiny_models.py --list failed: " + r.err);
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream lines(r.out);
  std::string name, arch;
  while (lines >> name >> arch) out.emplace_back(name, arch);
  return out;
}

}  // namespace temper::test
