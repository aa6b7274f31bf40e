// `quantize --target-bpw` / `--max-kld`: choosing one type per tensor from measured per-tensor KL
// (quantize/sensitivity.h), assuming the KL of a mix is the sum of its tensors' KL. This is a
// multiple-choice knapsack, solved exactly by dynamic programming over the bytes above each
// tensor's smallest option, counted in units of ceil(range / 65536) bytes (1 byte for models
// whose slack is under 64 KiB, so tests can compare with an exact solver). Costs are rounded up,
// so the chosen mix never exceeds the budget.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace temper {

struct MixOption {
  DType type;
  uint64_t bytes = 0;
  double kl = 0;  // mean KL(full || only this tensor at `type`) on the calibration tokens
};

struct MixItem {
  std::string name;
  std::vector<MixOption> options;  // at least one
};

struct MixChoice {
  std::vector<int> pick;  // per item: index into its options
  uint64_t bytes = 0;     // of the items
  double kl = 0;          // predicted: the sum of the picked options' KL
};

// The smallest and largest bytes the items can take.
uint64_t mix_min_bytes(const std::vector<MixItem>& items);
uint64_t mix_max_bytes(const std::vector<MixItem>& items);

// Minimum predicted KL with bytes <= budget. Throws Error when even the smallest options exceed
// the budget (the caller says the minimum in its own units first).
MixChoice choose_mix_for_budget(const std::vector<MixItem>& items, uint64_t budget);

// Fewest bytes with predicted KL <= max_kl; throws Error (saying the lowest predicted KL any mix
// reaches) when none does.
MixChoice choose_mix_for_kl(const std::vector<MixItem>& items, double max_kl);

}  // namespace temper
