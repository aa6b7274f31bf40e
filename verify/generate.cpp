// Prompting and sampling.
#include "generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/chat_template.h"

namespace temper::verify {

std::vector<int32_t> prompt_tokens(const EvalModel& m, const std::string& prompt, bool chat, const std::string& system) {
  return build_prompt(m, prompt, chat, system).ids;
}

Prompt build_prompt(const EvalModel& m, const std::string& prompt, bool chat, const std::string& system) {
  const Tokenizer& tok = *m.tok;
  if (!chat) return {prompt, tok.encode(prompt, /*add_special=*/true, /*parse_special=*/false)};
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  msgs.push_back({"user", prompt});
  ChatOptions opt;
  opt.add_generation_prompt = true;
  if (tok.bos() >= 0) opt.bos_token = tok.token_to_piece(tok.bos());
  const std::string text = render_chat(m.chat_template(), msgs, opt);
  // The rendered template writes its own BOS (as text); add one only when it did not.
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, /*parse_special=*/true);
  if (m.opened.desc.tokenizer.add_bos && tok.bos() >= 0 && (ids.empty() || ids[0] != tok.bos()))
    ids.insert(ids.begin(), tok.bos());
  return {text, ids};
}

int32_t sample_token(std::span<const float> logits, const SamplingOptions& opt, uint64_t step) {
  if (opt.temp <= 0) {
    int32_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
      if (logits[i] > logits[size_t(best)]) best = int32_t(i);
    return best;
  }
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b); };
  size_t keep = ids.size();
  if (opt.top_k > 0 && size_t(opt.top_k) < keep) keep = size_t(opt.top_k);
  std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(keep), ids.end(), by_logit);
  ids.resize(keep);
  std::vector<double> p(keep);
  const double mx = logits[size_t(ids[0])];
  double z = 0;
  for (size_t i = 0; i < keep; ++i) z += p[i] = std::exp((double(logits[size_t(ids[i])]) - mx) / opt.temp);
  if (opt.top_p < 1) {
    double cum = 0;
    size_t n = 0;
    while (n < keep && cum < double(opt.top_p) * z) cum += p[n++];
    keep = std::max<size_t>(n, 1);
    z = std::accumulate(p.begin(), p.begin() + ptrdiff_t(keep), 0.0);
  }
  // One generator per step from (seed, step): the same seed gives the same text.
  std::mt19937_64 rng(opt.seed * 0x9E3779B97F4A7C15ull + step);
  const double u = std::uniform_real_distribution<double>(0.0, z)(rng);
  double cum = 0;
  for (size_t i = 0; i < keep; ++i)
    if ((cum += p[i]) > u) return ids[i];
  return ids[keep - 1];
}

std::vector<int32_t> generate_tokens(const EvalModel& m, std::span<const int32_t> prompt, int max_new,
                                     const SamplingOptions& opt, const std::function<void(std::string_view)>& on_text,
                                     GenerateTimings* timings) {
  TEMPER_CHECK(!prompt.empty(), "empty prompt: nothing to continue from");
  const int train_ctx = m.model->config().n_ctx_train;
  int n_ctx = int(prompt.size()) + max_new;
  if (train_ctx > 0 && n_ctx > train_ctx) {
    TEMPER_CHECK(int(prompt.size()) < train_ctx, "prompt of ", prompt.size(), " tokens does not fit the model's context of ",
                 train_ctx);
    warn("generation stops at the model's context of ", train_ctx, " tokens");
    n_ctx = train_ctx;
    max_new = train_ctx - int(prompt.size());
  }
  forward::Session session(*m.model, n_ctx);
  std::vector<int32_t> out;
  GenerateTimings t;
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  auto t0 = Clock::now();
  std::vector<float> logits = session.eval(prompt, /*all_logits=*/false);
  t.n_prompt = int(prompt.size());
  t.prompt_seconds = seconds_since(t0);
  std::string emitted;
  for (int i = 0; i < max_new; ++i) {
    const int32_t id = sample_token(logits, opt, uint64_t(i));
    if (m.tok->is_eog(id)) break;
    out.push_back(id);
    if (on_text) {
      // Decode the whole continuation and emit what is new: keeps SentencePiece's leading
      // space rule and multi-token UTF-8 characters right.
      std::string text = m.tok->decode(out);
      if (text.size() > emitted.size()) {
        on_text(std::string_view(text).substr(emitted.size()));
        emitted = std::move(text);
      }
    }
    if (i + 1 < max_new) {
      t0 = Clock::now();
      logits = session.eval(std::span(&out.back(), 1), false);
      t.decode_seconds += seconds_since(t0);
      ++t.n_decode;
    }
  }
  if (timings) *timings = t;
  return out;
}

}  // namespace temper::verify
