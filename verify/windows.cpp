// Window planning and the scoring loop shared by eval and compare.
#include "windows.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"

namespace temper::verify {

WindowPlan plan_windows(size_t n_text_tokens, int ctx, int stride, int32_t bos) {
  WindowPlan p;
  p.ctx = ctx;
  p.bos = bos;
  TEMPER_CHECK(ctx >= 2, "--ctx ", ctx, ": need at least 2 tokens per window");
  const int m = p.max_text();
  p.stride = stride == 0 ? m : stride;
  TEMPER_CHECK(p.stride >= 1 && p.stride <= m, "--stride ", stride, ": must be between 1 and ", m,
               " (ctx ", ctx, bos >= 0 ? " minus the BOS" : "", ")");
  const bool overlap = p.stride < m;
  TEMPER_CHECK(!overlap || ctx >= 8, "--ctx ", ctx, ": overlapping windows need ctx >= 8");
  // Overlap: the previous window scored up to the prediction at position ctx-2, which covers
  // this window's positions < ctx-1-stride; never score the first half (too little context).
  const int first = overlap ? std::max(ctx / 2, ctx - 1 - p.stride) : 0;
  for (size_t s = 0; s < n_text_tokens; s += size_t(p.stride)) {
    const int n_text = int(std::min<size_t>(size_t(m), n_text_tokens - s));
    const int n_pos = n_text + (bos >= 0 ? 1 : 0);
    if (n_pos - 1 <= first) break;  // nothing left to score
    p.windows.push_back({s, n_text, first});
    p.n_scored += size_t(n_pos - 1 - first);
    if (s + size_t(m) >= n_text_tokens) break;  // this window reached the end of the text
  }
  TEMPER_CHECK(p.n_scored > 0, "the text has ", n_text_tokens, " tokens: too few to score with --ctx ", ctx);
  return p;
}

void score_windows(const forward::Model& model, std::span<const int32_t> text, const WindowPlan& plan,
                   const std::string& label, const ScoreFn& fn) {
  const int n_vocab = model.config().n_vocab;
  // Rows per forward call: whole windows for small vocabularies, fewer (through the KV cache)
  // when ctx * n_vocab floats would be large.
  const int max_rows = std::clamp(int((size_t(64) << 20) / size_t(n_vocab)), 1, plan.ctx);
  forward::Session session(model, plan.ctx);
  Progress bar(label, plan.n_scored, /*bytes=*/false);
  std::vector<int32_t> tokens;
  size_t k = 0;
  for (const Window& w : plan.windows) {
    tokens.clear();
    if (plan.bos >= 0) tokens.push_back(plan.bos);
    tokens.insert(tokens.end(), text.begin() + ptrdiff_t(w.text_start),
                  text.begin() + ptrdiff_t(w.text_start) + w.n_text);
    const int n_pos = int(tokens.size());
    session.reset();
    for (int at = 0; at < n_pos - 1; at += max_rows) {
      const int n = std::min(max_rows, n_pos - at);
      // Rows before first_scored are only needed to fill the KV cache.
      const bool need_rows = at + n > w.first_scored;
      const std::vector<float> logits = session.eval(std::span(tokens).subspan(size_t(at), size_t(n)), need_rows);
      if (!need_rows) continue;
      for (int r = std::max(0, w.first_scored - at); r < n && at + r < n_pos - 1; ++r) {
        fn(std::span(logits).subspan(size_t(r) * size_t(n_vocab), size_t(n_vocab)), tokens[size_t(at + r + 1)], k++);
        bar.add(1);
      }
    }
  }
  bar.finish();
}

}  // namespace temper::verify
