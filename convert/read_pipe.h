// ReadPipe: a thread reads a list of safetensors tensors front to back into a small ring of
// buffers while the caller writes earlier pieces out, so that reading (the disk, or the page
// cache copy) and writing run on two cores at once, and each byte crosses memory once per side.
// What it brings into the page cache it drops again once read (see uncache_).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <thread>
#include <vector>

#include "formats/safetensors.h"

namespace temper {

class ReadPipe {
 public:
  // Reads `tensors` of `st` in this order; both must outlive the pipe.
  ReadPipe(const SafetensorsModel& st, std::vector<const TensorInfo*> tensors);
  ~ReadPipe();  // stops the reader, also part way
  ReadPipe(const ReadPipe&) = delete;
  ReadPipe& operator=(const ReadPipe&) = delete;

  // Bytes of tensor number `tensor` (in the list) from `offset` on: at least 1, at most
  // max_len, valid until the next call. Calls must walk the tensors and their bytes in order,
  // as CheckpointWriter's ByteReader does. Rethrows the reader's Error (e.g. a read failure).
  std::span<const uint8_t> next(size_t tensor, uint64_t offset, uint64_t max_len);

 private:
  static constexpr size_t kSlots = 8;
  static constexpr uint64_t kSlotBytes = 256u << 10;  // the ring stays in the CPU caches
  struct Slot {
    size_t tensor = 0;
    uint64_t offset = 0, size = 0;
    std::unique_ptr<uint8_t[]> data{new uint8_t[kSlotBytes]};
  };
  void run();

  const SafetensorsModel& st_;
  const std::vector<const TensorInfo*> tensors_;
  // Shard files whose pages the reader drops from the page cache behind it, because it brings
  // them in (less than half cached when it starts). A conversion from disk then leaves the
  // cache as it found it, instead of filling it with a second copy of the model, and the
  // output's pages reuse the freed ones: taking fresh memory instead cost up to 2x in time.
  // Files that were cached (someone uses them) stay cached.
  const std::set<const MappedFile*> uncache_;
  // Each drop reaches this far back, so that the multi-page folio (at most 2 MiB) across the
  // previous drop's end goes too; the kernel drops only folios wholly inside the range.
  static constexpr uint64_t kUncacheLookback = 2u << 20;
  Slot slots_[kSlots];
  std::mutex mutex_;
  std::condition_variable filled_, freed_;
  size_t head_ = 0, count_ = 0;  // slots [head_, head_ + count_) hold data, oldest first
  uint64_t head_used_ = 0;        // bytes of the head slot already handed out
  bool stop_ = false, done_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace temper
