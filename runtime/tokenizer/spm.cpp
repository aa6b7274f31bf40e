// SentencePiece models on ▁-escaped text. ScoreBpe follows llama.cpp's llm_tokenizer_spm
// (itself SentencePiece's bpe_model): merge the adjacent pair whose concatenation is the
// best-scoring token, leftmost on ties; a leftover symbol that is no token is split back along
// its merges, then into <0xXX> byte tokens. Unigram is SentencePiece's Viterbi segmentation.
#include <algorithm>
#include <limits>
#include <map>
#include <queue>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper::tok {

namespace {
struct Symbol {
  int prev, next;
  size_t begin, len;
};
struct Bigram {
  int left, right;
  float score;
  size_t len;
  bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
};

void push_bytes(const Vocab& v, std::string_view text, int32_t unk, std::vector<int32_t>& out) {
  for (unsigned char c : text) {
    int32_t id = v.find(byte_token_text(c));
    if (id < 0) id = v.find(std::string(1, static_cast<char>(c)));
    if (id < 0) id = unk;
    if (id >= 0) out.push_back(id);
  }
}
}  // namespace

void ScoreBpe::encode(const Vocab& v, std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<Symbol> sym;
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::min(utf8_char_len(static_cast<unsigned char>(text[i])), text.size() - i);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, idx + 1, i, n});
    i += n;
  }
  sym.back().next = -1;
  std::priority_queue<Bigram> queue;
  std::map<std::string, std::pair<int, int>, std::less<>> rev_merge;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    std::string s(text.substr(sym[l].begin, sym[l].len + sym[r].len));
    const int32_t id = v.find(s);
    if (id < 0) return;
    queue.push({l, r, v.scores[id], s.size()});
    rev_merge[s] = {l, r};
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  auto resegment = [&](auto&& self, const Symbol& s) -> void {
    const std::string_view piece = text.substr(s.begin, s.len);
    if (int32_t id = v.find(piece); id >= 0) {
      out.push_back(id);
      return;
    }
    auto it = rev_merge.find(piece);
    if (it == rev_merge.end()) {
      push_bytes(v, piece, unk_id, out);
      return;
    }
    self(self, sym[it->second.first]);
    self(self, sym[it->second.second]);
  };
  for (int i = 0; i >= 0; i = sym[i].next) resegment(resegment, sym[i]);
}

void Unigram::encode(const Vocab& v, std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  size_t max_len = 1;
  float min_score = std::numeric_limits<float>::max();
  for (size_t i = 0; i < v.text.size(); ++i) {
    max_len = std::max(max_len, v.text[i].size());
    min_score = std::min(min_score, v.scores[i]);
  }
  const float unk_score = min_score - unk_penalty;
  auto usable = [&](int32_t id) {  // the lattice holds normal and user-defined pieces only
    if (v.types.empty()) return true;
    const auto t = static_cast<TokenType>(v.types[id]);
    return t == TokenType::kNormal || t == TokenType::kUserDefined;
  };
  const size_t n = text.size();
  std::vector<double> best(n + 1, -std::numeric_limits<double>::infinity());
  std::vector<size_t> from(n + 1, 0);
  std::vector<int32_t> via(n + 1, -1);
  best[0] = 0;
  for (size_t i = 0; i < n;) {
    const size_t ch = std::min(utf8_char_len(static_cast<unsigned char>(text[i])), n - i);
    if (best[i] > -std::numeric_limits<double>::infinity()) {
      bool single_char_piece = false;
      for (size_t e = i + 1; e <= n && e - i <= max_len; ++e) {
        const int32_t id = v.find(text.substr(i, e - i));
        if (id < 0 || !usable(id)) continue;
        if (e == i + ch) single_char_piece = true;
        const double sc = best[i] + (static_cast<TokenType>(v.types.empty() ? 1 : v.types[id]) == TokenType::kUserDefined ? 0.0 : v.scores[id]);
        if (sc > best[e]) best[e] = sc, from[e] = i, via[e] = id;
      }
      if (!single_char_piece && best[i] + unk_score > best[i + ch])
        best[i + ch] = best[i] + unk_score, from[i + ch] = i, via[i + ch] = -1;
    }
    i += ch;
  }
  std::vector<std::pair<size_t, int32_t>> path;  // (begin, id or -1 for unknown)
  for (size_t e = n; e > 0; e = from[e]) path.push_back({from[e], via[e]});
  std::reverse(path.begin(), path.end());
  for (size_t k = 0; k < path.size(); ++k) {
    const size_t b = path[k].first, e = k + 1 < path.size() ? path[k + 1].first : n;
    if (path[k].second >= 0) out.push_back(path[k].second);
    else if (byte_fallback) push_bytes(v, text.substr(b, e - b), unk_id, out);
    else if (unk_id >= 0 && !(k > 0 && path[k - 1].second < 0)) out.push_back(unk_id);  // runs of unknowns fuse
  }
}

}  // namespace temper::tok
