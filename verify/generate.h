// Text generation for `temper generate` and the exact-match tasks of `temper compare`: prompt
// tokens (plain or through the model's chat template), greedy or temperature / top-k / top-p
// sampling with a seeded RNG, stopping at an end-of-generation token.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval_model.h"

namespace temper::verify {

struct SamplingOptions {
  float temp = 0;     // 0 = greedy (argmax)
  int top_k = 0;      // 0 = all tokens
  float top_p = 1;    // nucleus: smallest set of tokens with this much probability
  uint64_t seed = 0;
};

// The prompt as the model sees it: the text that is tokenized and its ids.
struct Prompt {
  std::string text;  // the prompt itself, or the chat template's rendering of it
  std::vector<int32_t> ids;
};

// Plain: the tokenizer's encoding with its BOS. chat: the model's chat template with one user
// message (and `system` when not empty), rendered with the generation prompt; a model without
// a template gets the texts one after another. Throws Error for an unsupported template.
Prompt build_prompt(const EvalModel& m, const std::string& prompt, bool chat, const std::string& system = {});
// build_prompt(...).ids
std::vector<int32_t> prompt_tokens(const EvalModel& m, const std::string& prompt, bool chat,
                                   const std::string& system = {});

// Picks the next token from one logits row.
int32_t sample_token(std::span<const float> logits, const SamplingOptions& opt, uint64_t step);

// Where generation spent its time: the forward pass over the prompt (one batch) and the
// one-token forward passes after it (sampling and detokenizing are not counted).
struct GenerateTimings {
  int n_prompt = 0;
  double prompt_seconds = 0;
  int n_decode = 0;  // one-token forward passes
  double decode_seconds = 0;
};

// Appends up to `max_new` tokens after `prompt`, stopping after an end-of-generation token
// (not returned). `on_text` receives the newly decodable text after each token; `timings`,
// when given, is filled.
std::vector<int32_t> generate_tokens(const EvalModel& m, std::span<const int32_t> prompt, int max_new,
                                     const SamplingOptions& opt,
                                     const std::function<void(std::string_view)>& on_text = {},
                                     GenerateTimings* timings = nullptr);

}  // namespace temper::verify
