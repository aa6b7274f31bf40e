// Per-epoch example order (see data_order.h).
#include "train/data_order.h"

#include <numeric>

#include "core/error.h"

namespace temper::train {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014; the reference constants of Vigna's splitmix64.c).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), bound > 0: rejects the top partial range so every value is equally
  // likely.
  uint64_t below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % bound;
  }
};

}  // namespace

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  if (!shuffle) return order;
  // Two mixing rounds keep (seed, epoch) and (seed + 1, epoch - 1)-like pairs apart.
  SplitMix64 mix{seed};
  SplitMix64 rng{mix.next() ^ (uint64_t(epoch) * 0xD1B54A32D192ED03ull)};
  rng.state = rng.next();
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[size_t(rng.below(i))]);
  return order;
}

DataOrder::DataOrder(size_t n, uint64_t seed, bool shuffle, int64_t epoch, size_t position)
    : n_(n), seed_(seed), shuffle_(shuffle), epoch_(epoch), position_(position) {
  TEMPER_CHECK(n > 0, "no training examples");
  TEMPER_CHECK(epoch >= 0 && position < n, "data position ", position, " of epoch ", epoch, " is outside the ", n,
               " examples");
  order_ = epoch_order(n_, seed_, epoch_, shuffle_);
}

size_t DataOrder::next() {
  const size_t i = order_[position_];
  if (++position_ == n_) {
    position_ = 0;
    order_ = epoch_order(n_, seed_, ++epoch_, shuffle_);
  }
  return i;
}

}  // namespace temper::train
