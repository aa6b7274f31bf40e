// Perplexity windows, llama-perplexity style: each window is [BOS] + text tokens up to ctx
// positions. Non-overlapping windows (stride = ctx - 1 with a BOS) score every prediction after
// BOS; overlapping windows (smaller stride) score only predictions in the window's second half
// that the previous window did not score, so each scored token has at least ctx/2 of context.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "forward/forward.h"

namespace temper::verify {

struct Window {
  size_t text_start;  // index of the window's first text token
  int n_text;         // text tokens in the window
  int first_scored;   // first window position whose next-token prediction is scored
};

struct WindowPlan {
  int ctx = 0, stride = 0;
  int32_t bos = -1;  // -1: the tokenizer has no BOS; windows are text only
  std::vector<Window> windows;
  size_t n_scored = 0;
  int max_text() const { return ctx - (bos >= 0 ? 1 : 0); }
};

// stride 0 = non-overlapping. Throws Error for ctx < 2 (8 with overlap) or stride > ctx - 1.
WindowPlan plan_windows(size_t n_text_tokens, int ctx, int stride, int32_t bos);

// Called once per scored prediction, in text order: `logits` is the model's row (n_vocab),
// `target` the true next token, `k` the index of the prediction among all scored ones.
using ScoreFn = std::function<void(std::span<const float> logits, int32_t target, size_t k)>;

// Runs `model` over every window (a progress bar in tokens on a terminal). Only one window's
// logits (at most a few hundred MB for large vocabularies) are alive at a time.
void score_windows(const forward::Model& model, std::span<const int32_t> text, const WindowPlan& plan,
                   const std::string& label, const ScoreFn& fn);

}  // namespace temper::verify
