// Adapters on a fused tensor's row blocks -> one LoRA pair on the fused tensor (fused_lora.h).
#include "adapters/fused_lora.h"

#include <algorithm>
#include <cstring>

namespace temper {

FusedLoraPair fuse_lora_blocks(std::vector<const forward::LoraTarget*> blocks, int64_t rank) {
  std::sort(blocks.begin(), blocks.end(), [](auto* x, auto* y) { return x->row0 < y->row0; });
  const forward::LoraTarget& first = *blocks.front();
  FusedLoraPair m;
  m.in = first.pair->in;
  m.out = first.tensor.shape[0];
  bool shared_a = true;
  for (const forward::LoraTarget* t : blocks) shared_a &= t->pair->a == first.pair->a;
  m.n_stacked = shared_a ? 1 : int64_t(blocks.size());
  m.rank = m.n_stacked * rank;
  m.a.reserve(size_t(m.rank * m.in));
  for (int64_t i = 0; i < m.n_stacked; ++i)
    m.a.insert(m.a.end(), blocks[size_t(i)]->pair->a.begin(), blocks[size_t(i)]->pair->a.end());
  m.b.assign(size_t(m.out * m.rank), 0.0f);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const LoraTensorPair& p = *blocks[i]->pair;
    const int64_t col0 = shared_a ? 0 : int64_t(i) * rank;
    for (int64_t o = 0; o < p.out; ++o)
      std::memcpy(&m.b[size_t((blocks[i]->row0 + o) * m.rank + col0)], &p.b[size_t(o * rank)], size_t(rank) * 4);
  }
  return m;
}

std::map<std::string, std::vector<const forward::LoraTarget*>> group_fused_targets(
    const std::vector<forward::LoraTarget>& targets) {
  std::map<std::string, std::vector<const forward::LoraTarget*>> fused;
  for (const forward::LoraTarget& t : targets)
    if (is_fused_projection(t.tensor.spec->role)) fused[t.tensor.hf_name].push_back(&t);
  return fused;
}

}  // namespace temper
