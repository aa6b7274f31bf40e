// Files: read-only memory maps with bounds-checked views, and atomic outputs.
// Inputs are never opened for writing. Outputs are written to a temporary file in the target
// directory, named OUTPUT.tmp-XXXXXXXX (8 hex digits), and renamed over the final name only by
// commit(); an output that is abandoned (error, exception, SIGINT/SIGTERM) leaves nothing
// behind. Only SIGKILL or a power cut can leave such a file; the next AtomicOutput of the same
// name points it out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace temper {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(MappedFile&&) noexcept;
  MappedFile& operator=(MappedFile&&) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  // Bytes [offset, offset+len); throws Error naming the path and `what` if out of range.
  std::span<const uint8_t> span(uint64_t offset, uint64_t len, std::string_view what) const;
  // Tell the kernel we will read [offset, offset+len) soon / no longer need it.
  void advise_willneed(uint64_t offset, uint64_t len) const;
  void advise_dontneed(uint64_t offset, uint64_t len) const;
  // Copies bytes [offset, offset + dst.size()) with pread, bypassing the mapping: for one pass
  // over a large file this is ~3x faster than touching the mapping (no page-table work), and
  // it keeps nothing mapped. Throws Error naming the path and `what` if out of range.
  void read_at(uint64_t offset, std::span<uint8_t> dst, std::string_view what) const;
  // Share of the pages holding [offset, offset+len) that are in the page cache now (mincore),
  // or nullopt when the kernel will not say: it reports page-cache residency only to the file's
  // owner and to those who may write the file.
  std::optional<double> cached_fraction(uint64_t offset, uint64_t len) const;
  // Drops from the page cache the pages that lie wholly inside [offset, offset+len), and a
  // partial last page if the range reaches the end of the file (fadvise DONTNEED). Dirty
  // pages stay, and so does a multi-page folio (up to 2 MiB) that reaches outside the range.
  void uncache(uint64_t offset, uint64_t len) const;

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
  bool residency_visible_ = false;  // cached_fraction() can answer
};

std::string read_text_file(const std::string& path);  // throws Error naming the path
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

// An output file that appears under its final name only when complete.
class AtomicOutput {
 public:
  // Refuses an existing `final_path` unless `overwrite`; checks the directory is writable.
  // `inputs` are paths that must never be overwritten, even with `overwrite`.
  AtomicOutput(std::string final_path, bool overwrite, std::span<const std::string> inputs = {});
  ~AtomicOutput();  // removes the temporary file unless committed
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }

  // Streaming writes through stdio (for formats temper writes itself, e.g. GGUF).
  void write(const void* data, size_t n);  // throws Error (e.g. disk full) naming the file
  void write_zeros(size_t n);
  uint64_t bytes_written() const { return written_; }

  // Renames the temporary file to the final name; with durable outputs, fsyncs it first.
  void commit();

 private:
  void open_stream();
  std::string final_path_, temp_path_;
  FILE* stream_ = nullptr;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Whether commit() fsyncs before the rename (the global --sync option). Off by default, like
// cp, rsync and llama.cpp: the rename already guarantees that an interrupted run leaves no
// partial file; the fsync adds survival of a power cut, at the price of waiting for the disk,
// which on a fast machine takes longer than the conversion itself.
void set_durable_outputs(bool durable);

// On SIGINT, SIGTERM and SIGHUP: remove every unfinished AtomicOutput, print "temper:
// interrupted (SIGINT): nothing written" and exit 128 + the signal number (130, 143, 129).
// Installed by the first AtomicOutput, or by main() for the whole run. Idempotent.
void install_interrupt_handler();

// Returns the absolute, normalised path (symlinks resolved when the file exists).
std::string canonical_path(const std::string& path);

}  // namespace temper
