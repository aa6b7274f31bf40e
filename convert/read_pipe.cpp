#include "read_pipe.h"

#include <algorithm>

#include "core/error.h"

namespace temper {
namespace {

std::set<const MappedFile*> brought_in(const SafetensorsModel& st, const std::vector<const TensorInfo*>& tensors) {
  std::set<const MappedFile*> files, out;
  for (const TensorInfo* t : tensors) files.insert(&st.locate(*t).file);
  for (const MappedFile* f : files) {
    const auto cached = f->cached_fraction(0, f->size());
    if (cached && *cached < 0.5) out.insert(f);  // unknown: leave the cache alone
  }
  return out;
}

}  // namespace

ReadPipe::ReadPipe(const SafetensorsModel& st, std::vector<const TensorInfo*> tensors)
    : st_(st), tensors_(std::move(tensors)), uncache_(brought_in(st_, tensors_)), thread_([this] { run(); }) {}

ReadPipe::~ReadPipe() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  freed_.notify_all();
  thread_.join();
}

void ReadPipe::run() {
  try {
    size_t tail = 0;
    for (size_t t = 0; t < tensors_.size(); ++t) {
      const TensorInfo& info = *tensors_[t];
      const auto spot = st_.locate(info);
      const bool uncache = uncache_.count(&spot.file) > 0;
      for (uint64_t off = 0; off < info.nbytes; off += kSlotBytes) {
        {
          std::unique_lock lock(mutex_);
          freed_.wait(lock, [&] { return stop_ || count_ < kSlots; });
          if (stop_) return;
        }
        // The slot at `tail` is free and only this thread touches it until it is published.
        Slot& s = slots_[tail];
        s.tensor = t;
        s.offset = off;
        s.size = std::min(kSlotBytes, info.nbytes - off);
        st_.read_range(info, off, {s.data.get(), size_t(s.size)});
        if (uncache) {
          const uint64_t at = spot.offset + off;
          const uint64_t from = at > kUncacheLookback ? at - kUncacheLookback : 0;
          spot.file.uncache(from, at + s.size - from);
        }
        {
          std::lock_guard lock(mutex_);
          ++count_;
        }
        filled_.notify_one();
        tail = (tail + 1) % kSlots;
      }
    }
    std::lock_guard lock(mutex_);
    done_ = true;
  } catch (...) {
    std::lock_guard lock(mutex_);
    error_ = std::current_exception();
  }
  filled_.notify_one();
}

std::span<const uint8_t> ReadPipe::next(size_t tensor, uint64_t offset, uint64_t max_len) {
  std::unique_lock lock(mutex_);
  if (count_ > 0 && head_used_ == slots_[head_].size) {  // the caller is done with the head slot
    head_ = (head_ + 1) % kSlots;
    head_used_ = 0;
    --count_;
    freed_.notify_one();
  }
  filled_.wait(lock, [&] { return count_ > 0 || error_ || done_; });
  if (count_ == 0 && error_) std::rethrow_exception(error_);
  TEMPER_CHECK(count_ > 0, "read pipe: bytes of tensor ", tensor, " asked for after the last one");
  const Slot& s = slots_[head_];
  TEMPER_CHECK(s.tensor == tensor && s.offset + head_used_ == offset, "read pipe: asked for tensor ", tensor,
               " at byte ", offset, ", but the next bytes are tensor ", s.tensor, " at byte ", s.offset + head_used_);
  const uint64_t n = std::min(max_len, s.size - head_used_);
  const uint8_t* p = s.data.get() + head_used_;
  head_used_ += n;
  return {p, size_t(n)};
}

}  // namespace temper
