// Multiple-choice knapsack by dynamic programming (see mix_select.h).
#include "quantize/mix_select.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace temper {
namespace {

// 65536 capacity steps: N tensors x 65536 one-byte choices is 13 MiB for 200 tensors, and the
// rounding loses at most N units of the slack (0.3% of it for 200 tensors).
constexpr uint64_t kSteps = 65536;

uint64_t min_option_bytes(const MixItem& it) {
  TEMPER_CHECK(!it.options.empty() && it.options.size() < 256, "mix: tensor '", it.name, "' has ",
               it.options.size(), " options");
  uint64_t m = std::numeric_limits<uint64_t>::max();
  for (const auto& o : it.options) m = std::min(m, o.bytes);
  return m;
}

// f[c]: the least predicted KL of the items with at most c units above their smallest options;
// choice[j][c]: the option item j takes there.
struct Table {
  uint64_t unit = 1;
  std::vector<double> f;
  std::vector<std::vector<uint8_t>> choice;
  std::vector<std::vector<uint64_t>> units;  // per item, per option: units above its smallest
};

Table solve(const std::vector<MixItem>& items, uint64_t slack) {
  Table t;
  t.unit = std::max<uint64_t>(1, (slack + kSteps - 1) / kSteps);
  const size_t S = size_t(slack / t.unit);
  t.f.assign(S + 1, 0.0);
  std::vector<double> g(S + 1);
  for (const MixItem& it : items) {
    const uint64_t mn = min_option_bytes(it);
    std::vector<uint64_t> u;
    for (const auto& o : it.options) u.push_back((o.bytes - mn + t.unit - 1) / t.unit);  // rounded up: stays feasible
    // Options by bytes, so an equal KL keeps the smaller one (strict < below).
    std::vector<int> order(it.options.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return it.options[a].bytes < it.options[b].bytes; });
    std::vector<uint8_t> ch(S + 1, 0);
    for (size_t c = 0; c <= S; ++c) {
      double best = std::numeric_limits<double>::infinity();
      for (int o : order) {
        if (u[size_t(o)] > c) continue;
        const double v = t.f[c - u[size_t(o)]] + it.options[size_t(o)].kl;
        if (v < best) {
          best = v;
          ch[c] = uint8_t(o);
        }
      }
      g[c] = best;
    }
    t.f.swap(g);
    t.choice.push_back(std::move(ch));
    t.units.push_back(std::move(u));
  }
  return t;
}

MixChoice backtrack(const std::vector<MixItem>& items, const Table& t, size_t c) {
  MixChoice m;
  m.pick.assign(items.size(), 0);
  for (size_t j = items.size(); j-- > 0;) {
    const int o = t.choice[j][c];
    m.pick[j] = o;
    c -= size_t(t.units[j][size_t(o)]);
  }
  for (size_t j = 0; j < items.size(); ++j) {
    m.bytes += items[j].options[size_t(m.pick[j])].bytes;
    m.kl += items[j].options[size_t(m.pick[j])].kl;
  }
  return m;
}

}  // namespace

uint64_t mix_min_bytes(const std::vector<MixItem>& items) {
  uint64_t s = 0;
  for (const auto& it : items) s += min_option_bytes(it);
  return s;
}

uint64_t mix_max_bytes(const std::vector<MixItem>& items) {
  uint64_t s = 0;
  for (const auto& it : items) {
    uint64_t m = 0;
    for (const auto& o : it.options) m = std::max(m, o.bytes);
    s += m;
  }
  return s;
}

MixChoice choose_mix_for_budget(const std::vector<MixItem>& items, uint64_t budget) {
  const uint64_t lo = mix_min_bytes(items);
  TEMPER_CHECK(budget >= lo, "mix: a budget of ", budget, " bytes is below the smallest mix (", lo, " bytes)");
  const uint64_t slack = std::min(budget, mix_max_bytes(items)) - lo;
  const Table t = solve(items, slack);
  return backtrack(items, t, t.f.size() - 1);
}

MixChoice choose_mix_for_kl(const std::vector<MixItem>& items, double max_kl) {
  const Table t = solve(items, mix_max_bytes(items) - mix_min_bytes(items));
  TEMPER_CHECK(t.f.back() <= max_kl, "--max-kld ", max_kl, " is below the lowest KL any mix of these types is "
               "predicted to reach (", t.f.back(), ")");
  const size_t c = size_t(std::lower_bound(t.f.begin(), t.f.end(), max_kl, std::greater<double>()) - t.f.begin());
  return backtrack(items, t, c);
}

}  // namespace temper
