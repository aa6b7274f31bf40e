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

// Plain: the tokenizer's encoding with its BOS. chat: the model's chat template with one user
// message (and `system` when not empty), rendered with the generation prompt; a model without
// a template gets the texts one after another. Throws Error for an unsupported template.
std::vector<int32_t> prompt_tokens(const EvalModel& m, const std::string& prompt, bool chat,
                                   const std::string& system = {});

// Picks the next token from one logits row.
int32_t sample_token(std::span<const float> logits, const SamplingOptions& opt, uint64_t step);

// Appends up to `max_new` tokens after `prompt`, stopping after an end-of-generation token
// (not returned). `on_text` receives the newly decodable text after each token.
std::vector<int32_t> generate_tokens(const EvalModel& m, std::span<const int32_t> prompt, int max_new,
                                     const SamplingOptions& opt,
                                     const std::function<void(std::string_view)>& on_text = {});

}  // namespace temper::verify
