#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"

namespace temper {
namespace fs = std::filesystem;

namespace {

std::string errno_str() { return std::strerror(errno); }

// Temporary outputs still open, removed by the signal handler on SIGINT/SIGTERM.
// A fixed array of C strings, because only async-signal-safe work may happen in the handler.
constexpr int kMaxTemps = 16;
char g_temps[kMaxTemps][4096];
std::atomic<bool> g_temp_used[kMaxTemps];
std::once_flag g_handler_once;
bool durable_outputs = false;  // set_durable_outputs()

// Removes unfinished outputs, says so on one line, and exits 128 + signal number as shells do
// (130 for Ctrl-C, 143 for SIGTERM). Only async-signal-safe calls: unlink, write, _exit.
void on_fatal_signal(int sig) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load()) unlink(g_temps[i]);
  const char* msg = sig == SIGINT    ? "\ntemper: interrupted (SIGINT): nothing written\n"
                    : sig == SIGTERM ? "\ntemper: interrupted (SIGTERM): nothing written\n"
                                     : "\ntemper: interrupted (SIGHUP): nothing written\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, std::strlen(msg));
  (void)ignored;
  _exit(128 + sig);
}

// The note for outputs left by a run that could not clean up (SIGKILL, power cut): files named
// like our temporaries of this same output. They may also belong to a run going on right now.
void note_stale_temps(const std::string& final_path) {
  const fs::path out(final_path);
  const std::string prefix = out.filename().string() + ".tmp-";
  fs::path dir = out.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != prefix.size() + 8 || !name.starts_with(prefix)) continue;
    if (name.find_first_not_of("0123456789abcdef", prefix.size()) != std::string::npos) continue;
    std::fprintf(stderr,
                 "temper: note: %s is an unfinished output of an earlier temper run that was killed; "
                 "unless a temper writing %s is still running, it can be deleted\n",
                 it->path().c_str(), final_path.c_str());
  }
}

}  // namespace

void install_interrupt_handler() {
  std::call_once(g_handler_once, [] {
    // A signal the parent ignores stays ignored (nohup, background jobs of a plain shell).
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler != SIG_IGN) signal(sig, on_fatal_signal);
    }
  });
}

namespace {

int register_temp(const std::string& path) {
  install_interrupt_handler();
  if (path.size() >= sizeof(g_temps[0])) return -1;
  for (int i = 0; i < kMaxTemps; ++i) {
    bool expected = false;
    if (!g_temp_used[i].load()) {
      std::memcpy(g_temps[i], path.c_str(), path.size() + 1);
      if (g_temp_used[i].compare_exchange_strong(expected, true)) return i;
    }
  }
  return -1;
}

void unregister_temp(const std::string& path) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load() && path == g_temps[i]) g_temp_used[i].store(false);
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(path, ": cannot open: ", errno_str());
  struct stat st {};
  if (fstat(fd_, &st) != 0) {
    const std::string why = errno_str();
    release();
    fail(path, ": cannot stat: ", why);
  }
  if (!S_ISREG(st.st_mode)) {
    release();
    fail(path, ": not a regular file");
  }
  size_ = uint64_t(st.st_size);
  // The rule mincore() applies before it reports page-cache residency of a file mapping.
  residency_visible_ = st.st_uid == geteuid() || geteuid() == 0 || ::access(path.c_str(), W_OK) == 0;
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      const std::string why = errno_str();
      release();
      fail(path, ": cannot map ", size_, " bytes: ", why);
    }
    data_ = static_cast<const uint8_t*>(p);
  }
}

void MappedFile::release() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_), fd_(o.fd_),
      residency_visible_(o.residency_visible_) {
  o.data_ = nullptr;
  o.size_ = 0;
  o.fd_ = -1;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    fd_ = o.fd_;
    residency_visible_ = o.residency_visible_;
    o.data_ = nullptr;
    o.size_ = 0;
    o.fd_ = -1;
  }
  return *this;
}

void MappedFile::read_at(uint64_t offset, std::span<uint8_t> dst, std::string_view what) const {
  TEMPER_CHECK(offset <= size_ && dst.size() <= size_ - offset, path_, ": ", what, " (bytes ", offset, "..",
               offset + dst.size(), ") lies outside the file of ", size_, " bytes");
  size_t done = 0;
  while (done < dst.size()) {
    const ssize_t n = ::pread(fd_, dst.data() + done, dst.size() - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path_, ": ", what, ": read failed at byte ", offset + done, ": ", errno_str());
    if (n == 0) fail(path_, ": ", what, ": file ends at byte ", offset + done, " (it shrank while open)");
    done += size_t(n);
  }
}

std::span<const uint8_t> MappedFile::span(uint64_t offset, uint64_t len, std::string_view what) const {
  TEMPER_CHECK(offset <= size_ && len <= size_ - offset, path_, ": ", what, " (bytes ", offset, "..",
               offset + len, ") lies outside the file of ", size_, " bytes");
  return {data_ + offset, size_t(len)};
}

std::optional<double> MappedFile::cached_fraction(uint64_t offset, uint64_t len) const {
  if (!residency_visible_ || !data_ || offset >= size_ || len == 0) return std::nullopt;
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t start = offset / page * page, end = std::min(size_, offset + len);
  constexpr uint64_t kPagesPerCall = 1 << 16;  // 64 KiB of answers at a time
  std::vector<unsigned char> answers(size_t(std::min(kPagesPerCall, (end - start + page - 1) / page)));
  uint64_t pages = 0, cached = 0;
  for (uint64_t at = start; at < end;) {
    const uint64_t n = std::min<uint64_t>(kPagesPerCall, (end - at + page - 1) / page);
    if (mincore(const_cast<uint8_t*>(data_) + at, size_t(n * page), answers.data()) != 0) return std::nullopt;
    for (uint64_t i = 0; i < n; ++i) cached += answers[i] & 1;
    pages += n;
    at += n * page;
  }
  return double(cached) / double(pages);
}

void MappedFile::uncache(uint64_t offset, uint64_t len) const {
  if (fd_ < 0 || offset >= size_) return;
  // Length 0 means "to the end of the file", which also takes a partial last page.
  const uint64_t n = len >= size_ - offset ? 0 : len;
  // A hint: failure leaves the pages cached, which is harmless.
  (void)posix_fadvise(fd_, off_t(offset), off_t(n), POSIX_FADV_DONTNEED);
}

static void advise(const uint8_t* base, uint64_t size, uint64_t offset, uint64_t len, int how) {
  if (!base || offset >= size) return;
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t start = offset / page * page;
  const uint64_t end = std::min(size, offset + len);
  madvise(const_cast<uint8_t*>(base) + start, end - start, how);
}

void MappedFile::advise_willneed(uint64_t offset, uint64_t len) const {
  advise(data_, size_, offset, len, MADV_WILLNEED);
  // Also map the pages now, in one call: otherwise a consumer that hands the mapping straight to
  // write() (convert) takes one page fault per 4 KiB inside the kernel's copy, which made
  // conversion ~5x slower than cat. Linux >= 5.14; older kernels answer EINVAL, harmlessly.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
  advise(data_, size_, offset, len, MADV_POPULATE_READ);
}
void MappedFile::advise_dontneed(uint64_t offset, uint64_t len) const {
  advise(data_, size_, offset, len, MADV_DONTNEED);
}

std::string read_text_file(const std::string& path) {
  MappedFile f(path);
  return std::string(reinterpret_cast<const char*>(f.data()), size_t(f.size()));
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string canonical_path(const std::string& path) {
  std::error_code ec;
  auto p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? path : p.string();
}

AtomicOutput::AtomicOutput(std::string final_path, bool overwrite, std::span<const std::string> inputs)
    : final_path_(std::move(final_path)) {
  TEMPER_CHECK(!final_path_.empty(), "no output path given");
  const std::string canon = canonical_path(final_path_);
  for (const auto& in : inputs)
    TEMPER_CHECK(canonical_path(in) != canon, final_path_, ": refusing to overwrite an input file");
  if (file_exists(final_path_)) {
    TEMPER_CHECK(overwrite, final_path_, ": output exists (use --force to overwrite)");
    TEMPER_CHECK(!is_directory(final_path_), final_path_, ": output path is a directory");
  }
  fs::path dir = fs::path(final_path_).parent_path();
  if (dir.empty()) dir = ".";
  TEMPER_CHECK(is_directory(dir.string()), final_path_, ": output directory '", dir.string(), "' does not exist");
  TEMPER_CHECK(access(dir.c_str(), W_OK) == 0, final_path_, ": output directory '", dir.string(),
               "' is not writable");
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".tmp-%08x", rd());
  temp_path_ = final_path_ + suffix;
  note_stale_temps(final_path_);
  int fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(final_path_, ": cannot create temporary file '", temp_path_, "': ", errno_str());
  ::close(fd);
  register_temp(temp_path_);
}

AtomicOutput::~AtomicOutput() {
  if (stream_) std::fclose(stream_);
  if (!committed_) {
    ::unlink(temp_path_.c_str());
    unregister_temp(temp_path_);
  }
}

void AtomicOutput::open_stream() {
  if (stream_) return;
  // Not fopen("wb"): its O_TRUNC of the (empty) placeholder makes ext4 flush the whole file to
  // disk when it is closed (auto_da_alloc), which costs as much as the writing itself.
  int fd = ::open(temp_path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || !(stream_ = fdopen(fd, "wb"))) {
    if (fd >= 0) ::close(fd);
    fail(temp_path_, ": cannot open for writing: ", errno_str());
  }
  std::setvbuf(stream_, nullptr, _IOFBF, 1 << 20);
}

void AtomicOutput::write(const void* data, size_t n) {
  open_stream();
  if (n && std::fwrite(data, 1, n, stream_) != n)
    fail(final_path_, ": write failed after ", written_, " bytes: ", errno_str());
  written_ += n;
}

void AtomicOutput::write_zeros(size_t n) {
  static const char zeros[256] = {};
  while (n) {
    size_t k = std::min(n, sizeof zeros);
    write(zeros, k);
    n -= k;
  }
}

void set_durable_outputs(bool durable) { durable_outputs = durable; }

void AtomicOutput::commit() {
  if (stream_) {
    if (std::fflush(stream_) != 0) fail(final_path_, ": write failed: ", errno_str());
    if (durable_outputs && fsync(fileno(stream_)) != 0) fail(final_path_, ": fsync failed: ", errno_str());
    const bool closed = std::fclose(stream_) == 0;
    stream_ = nullptr;
    if (!closed) fail(final_path_, ": write failed: ", errno_str());
  } else if (durable_outputs) {
    int fd = ::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (fsync(fd) != 0) {
        ::close(fd);
        fail(final_path_, ": fsync failed: ", errno_str());
      }
      ::close(fd);
    }
  }
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    fail(final_path_, ": cannot rename temporary file into place: ", errno_str());
  committed_ = true;
  unregister_temp(temp_path_);
}

}  // namespace temper
