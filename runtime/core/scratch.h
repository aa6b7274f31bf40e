// ScratchBuffer: a grow-only buffer of uninitialised elements, reused across calls.
// Streaming a model allocates one large work buffer per tensor otherwise: std::vector zeroes
// every new element and each fresh 64 MiB block takes a page fault per 4 KiB, which together
// took half the time of a whole-file Q4_K_M quantization.
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <type_traits>

namespace temper {

template <typename T>
class ScratchBuffer {
  static_assert(std::is_trivial_v<T>, "elements are left uninitialised");

 public:
  // n elements; contents are unspecified (whatever an earlier call left). Invalidates earlier spans
  // only when it has to grow.
  std::span<T> get(size_t n) {
    if (n > capacity_) {
      data_.reset(new T[n]);  // default-initialised: no zeroing
      capacity_ = n;
    }
    return {data_.get(), n};
  }

 private:
  std::unique_ptr<T[]> data_;
  size_t capacity_ = 0;
};

}  // namespace temper
