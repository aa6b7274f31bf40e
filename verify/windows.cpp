// Window planning (both protocols) and the scoring loop shared by eval and compare.
#include "windows.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "eval_model.h"

namespace temper::verify {

const char* protocol_name(Protocol p) { return p == Protocol::kLlama ? "llama" : "windows"; }

int WindowPlan::max_positions() const {
  int n = 0;
  for (const Window& w : windows) n = std::max(n, w.n_text + (bos >= 0 ? 1 : 0));
  return n;
}

WindowPlan plan_windows(size_t n_text_tokens, int ctx, int stride, int32_t bos, int max_windows) {
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
    if (max_windows > 0 && p.windows.size() == size_t(max_windows)) break;
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

WindowPlan plan_llama_chunks(size_t n_tokens, int ctx, int32_t bos, int max_chunks) {
  TEMPER_CHECK(ctx >= 3, "--ctx ", ctx, ": --protocol llama needs at least 3 tokens per chunk");
  // llama-perplexity's own limit ("you need at least 2*n_ctx tokens").
  TEMPER_CHECK(n_tokens >= 2 * size_t(ctx), "the text has ", n_tokens, " tokens: --protocol llama needs at least ",
               2 * size_t(ctx), " (2 * --ctx ", ctx, "), as llama-perplexity does");
  WindowPlan p;
  p.ctx = ctx;
  p.stride = ctx;
  p.bos = bos;
  const size_t n_chunk_max = n_tokens / size_t(ctx);
  const size_t n_chunk = max_chunks > 0 ? std::min(size_t(max_chunks), n_chunk_max) : n_chunk_max;
  const int first = ctx / 2;
  for (size_t i = 0; i < n_chunk; ++i) {
    // With a BOS the chunk's first token is not fed (the BOS takes its place).
    const size_t start = i * size_t(ctx) + (bos >= 0 ? 1 : 0);
    p.windows.push_back({start, bos >= 0 ? ctx - 1 : ctx, first});
    p.n_scored += size_t(ctx - 1 - first);
  }
  return p;
}

ScoredText prepare_scoring(const Tokenizer& tok, const std::string& text_path, const ScoringSpec& spec) {
  ScoredText s;
  TEMPER_CHECK(spec.chunks >= 0, "--chunks ", spec.chunks, ": must not be negative");
  s.tokens = tokenize_text_file(tok, text_path);
  if (spec.protocol == Protocol::kLlama) {
    TEMPER_CHECK(spec.stride == 0, "--stride ", spec.stride, ": not used by --protocol llama (chunks do not overlap)");
    // llama.cpp tokenizes with add_special: a BOS in front when the vocabulary adds one. Probe
    // the tokenizer on a short string rather than guess from the model format.
    const std::vector<int32_t> with = tok.encode("a", true, false), without = tok.encode("a", false, false);
    const bool add_bos = tok.bos() >= 0 && with.size() > without.size() && with.front() == tok.bos();
    TEMPER_CHECK(with.size() == without.size() + (add_bos ? 1 : 0),
                 "--protocol llama: the tokenizer adds an end-of-text token, which llama-perplexity refuses");
    if (add_bos) s.tokens.insert(s.tokens.begin(), tok.bos());
    s.n_tokens_in_text = s.tokens.size();
    if (spec.max_tokens > 0 && s.tokens.size() > spec.max_tokens) s.tokens.resize(spec.max_tokens);
    s.plan = plan_llama_chunks(s.tokens.size(), spec.ctx, add_bos ? tok.bos() : -1, spec.chunks);
  } else {
    s.n_tokens_in_text = s.tokens.size();
    if (spec.max_tokens > 0 && s.tokens.size() > spec.max_tokens) s.tokens.resize(spec.max_tokens);
    TEMPER_CHECK(s.tokens.size() >= 2, "--max-tokens ", spec.max_tokens, ": need at least 2 tokens");
    s.plan = plan_windows(s.tokens.size(), spec.ctx, spec.stride, tok.bos(), spec.chunks);
  }
  return s;
}

void score_windows(const forward::Model& model, std::span<const int32_t> text, const WindowPlan& plan,
                   const std::string& label, const ScoreFn& fn) {
  const int n_vocab = model.config().n_vocab;
  // The KV cache holds the longest window, not --ctx: a huge --ctx over a short text costs nothing.
  const int n_ctx = plan.max_positions();
  // Rows per forward call: whole windows for small vocabularies, fewer (through the KV cache)
  // when ctx * n_vocab floats would be large.
  const int max_rows = std::clamp(int((size_t(64) << 20) / size_t(n_vocab)), 1, n_ctx);
  forward::Session session(model, n_ctx);
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

std::string training_context_warning(const WindowPlan& plan, int n_ctx_train, const std::string& model) {
  if (n_ctx_train <= 0 || plan.ctx <= n_ctx_train) return "";
  return cat("--ctx ", plan.ctx, " is longer than the ", n_ctx_train, " tokens ", model,
             " was trained on: positions past that are extrapolation, so the perplexity usually rises and is not "
             "comparable to numbers at the training context");
}

}  // namespace temper::verify
