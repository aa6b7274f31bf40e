// Which predictions eval and compare score, and the scoring loop they share.
//
// Two protocols:
//  * windows (default): each window is [BOS] + text tokens up to ctx positions. Non-overlapping
//    windows (stride = ctx - 1 with a BOS) score every prediction after BOS; overlapping windows
//    (smaller stride) score only predictions in the window's second half that the previous
//    window did not score, so each scored token has at least ctx/2 of context.
//  * llama: exactly what `llama-perplexity` does without --ppl-stride (tools/perplexity/
//    perplexity.cpp, perplexity()): the whole text is tokenized with BOS (when the vocabulary
//    adds one), cut into back-to-back chunks of ctx tokens (the tail that does not fill a chunk
//    is dropped), the first token of each chunk is replaced by BOS, and only the predictions
//    from position ctx/2 on are scored. It needs at least 2 * ctx tokens, as llama.cpp does.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "forward/forward.h"
#include "tokenizer/tokenizer.h"

namespace temper::verify {

enum class Protocol { kWindows, kLlama };
const char* protocol_name(Protocol p);  // "windows", "llama"

// Everything that decides which tokens are scored with which context: two runs with equal specs
// over the same text and tokenizer score the same predictions.
struct ScoringSpec {
  int ctx = 512;
  int stride = 0;  // windows protocol only; 0 = non-overlapping
  Protocol protocol = Protocol::kWindows;
  int chunks = 0;         // score only the first N windows/chunks; 0 = all
  size_t max_tokens = 0;  // use only the first N tokens of the tokenized text; 0 = all
};

struct Window {
  size_t text_start;  // index of the window's first token in the scored token list
  int n_text;         // tokens of the list in the window (after the BOS, if any)
  int first_scored;   // first window position whose next-token prediction is scored
};

struct WindowPlan {
  int ctx = 0, stride = 0;
  int32_t bos = -1;  // put before every window; -1: windows are list tokens only
  std::vector<Window> windows;
  size_t n_scored = 0;
  int max_text() const { return ctx - (bos >= 0 ? 1 : 0); }
  int max_positions() const;  // the longest window, BOS included
};

// Windows protocol. stride 0 = non-overlapping; max_windows 0 = all. Throws Error for ctx < 2
// (8 with overlap) or stride > ctx - 1.
WindowPlan plan_windows(size_t n_text_tokens, int ctx, int stride, int32_t bos, int max_windows = 0);

// llama protocol over `n_tokens` tokens that already start with the BOS (when the vocabulary adds
// one). bos >= 0 replaces each chunk's first token (pass -1 when the vocabulary adds no BOS);
// max_chunks 0 = all. Throws Error when n_tokens < 2 * ctx, naming both.
WindowPlan plan_llama_chunks(size_t n_tokens, int ctx, int32_t bos, int max_chunks = 0);

// The token list a protocol scores and its plan.
struct ScoredText {
  std::vector<int32_t> tokens;  // windows: the text's tokens; llama: BOS (if added) + text tokens
  size_t n_tokens_in_text = 0;  // before --max-tokens, counted the same way
  WindowPlan plan;
};
// Tokenizes the text file and plans it. Throws Error naming the file or the option at fault.
ScoredText prepare_scoring(const Tokenizer& tok, const std::string& text_path, const ScoringSpec& spec);

// Called once per scored prediction, in text order: `logits` is the model's row (n_vocab),
// `target` the true next token, `k` the index of the prediction among all scored ones.
using ScoreFn = std::function<void(std::span<const float> logits, int32_t target, size_t k)>;

// Runs `model` over every window (a progress bar in tokens on a terminal). Only one window's
// logits (at most a few hundred MB for large vocabularies) are alive at a time.
void score_windows(const forward::Model& model, std::span<const int32_t> text, const WindowPlan& plan,
                   const std::string& label, const ScoreFn& fn);

// A warning when the windows are longer than the context the model was trained on (n_ctx_train
// 0 = unknown): positions past it are extrapolation and the numbers are not comparable to
// published ones. "" when there is nothing to say. llama-perplexity warns the same way.
std::string training_context_warning(const WindowPlan& plan, int n_ctx_train, const std::string& model);

}  // namespace temper::verify
