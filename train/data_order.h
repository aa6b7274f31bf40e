// The order training examples are visited in: a seeded permutation per epoch (as Hugging Face
// Trainer's default RandomSampler), or file order with --no-shuffle. The permutation is a pure
// function of (n, seed, epoch), so a checkpoint only stores (epoch, position in that epoch)
// and a resumed run visits exactly the examples the uninterrupted run would have.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace temper::train {

// Indices 0..n-1 in the order epoch `epoch` visits them: a Fisher-Yates shuffle driven by
// SplitMix64 seeded from (seed, epoch), with unbiased bounded draws (no std::shuffle or
// std::uniform_int_distribution, whose results differ between standard libraries), or the
// identity when `shuffle` is false.
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle);

// Walks the examples epoch after epoch; `epoch` and `position` are what a checkpoint stores.
class DataOrder {
 public:
  DataOrder(size_t n, uint64_t seed, bool shuffle, int64_t epoch = 0, size_t position = 0);
  size_t next();  // the next example's index; moves to the next epoch after the last one
  int64_t epoch() const { return epoch_; }
  size_t position() const { return position_; }  // in the current epoch's order, < n

 private:
  size_t n_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_;
  size_t position_;
  std::vector<size_t> order_;  // epoch_order(n_, seed_, epoch_, shuffle_)
};

}  // namespace temper::train
