// Merge-rank BPE (tokenizer.json "BPE"; llama.cpp gpt2 / gemma4): the adjacent pair with the
// lowest merge rank is merged first, leftmost on ties, via a heap (O(n log n) per word, so
// very long words stay cheap). Characters missing from the vocabulary become <0xXX> byte
// tokens (byte_fallback) or the unknown token.
#include <queue>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper::tok {

namespace {
uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

constexpr int32_t kBytes = -2;  // symbol spelled as byte tokens
constexpr int32_t kDropped = -3;

struct Symbol {
  int32_t id;
  int prev, next;
  size_t begin, len;
};
struct Candidate {
  int32_t rank;
  int left, right;
  int32_t left_id, right_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};
}  // namespace

void RankBpe::add_merge(const Vocab& v, const std::string& left, const std::string& right, int32_t rank) {
  const int32_t a = v.find(left), b = v.find(right), m = v.find(left + right);
  // A merge whose parts or result are not tokens can never apply (HF refuses such files;
  // llama.cpp would fall back to bytes): skip it.
  if (a < 0 || b < 0 || m < 0) return;
  merges.try_emplace(pair_key(a, b), rank, m);  // the first (lowest) rank wins
}

void RankBpe::encode(const Vocab& v, std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges || (whole_newline_words && word.find_first_not_of('\n') == std::string_view::npos)) {
    if (int32_t id = v.find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min(utf8_char_len(static_cast<unsigned char>(word[i])), word.size() - i);
    int32_t id = v.find(word.substr(i, n));
    if (id < 0) {
      bool bytes_ok = byte_fallback;
      for (size_t k = 0; bytes_ok && k < n; ++k) bytes_ok = v.find(byte_token_text(static_cast<uint8_t>(word[i + k]))) >= 0;
      if (bytes_ok) id = kBytes;
      else if (unk_id >= 0) id = unk_id;
      else id = kDropped;
      if (id == unk_id && fuse_unk && !sym.empty() && sym.back().id == unk_id) {
        sym.back().len += n;
        i += n;
        continue;
      }
    }
    const int idx = static_cast<int>(sym.size());
    sym.push_back({id, idx - 1, idx + 1, i, n});
    i += n;
  }
  sym.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
    auto it = merges.find(pair_key(sym[l].id, sym[r].id));
    if (it != merges.end()) heap.push({it->second.first, l, r, sym[l].id, sym[r].id});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& l = sym[c.left];
    Symbol& r = sym[c.right];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;  // stale
    l.id = merges.at(pair_key(c.left_id, c.right_id)).second;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  for (int i = 0; i >= 0; i = sym[i].next) {
    const Symbol& s = sym[i];
    if (s.id >= 0) out.push_back(s.id);
    else if (s.id == kBytes)
      for (size_t k = 0; k < s.len; ++k) out.push_back(v.find(byte_token_text(static_cast<uint8_t>(word[s.begin + k]))));
  }
}

}  // namespace temper::tok
