// Running the question set on one model: greedy answers for exact match, log-likelihood of each
// choice for multiple choice.
#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "core/log.h"
#include "generate.h"
#include "metrics.h"
#include "tasks.h"

namespace temper::verify {
namespace {

// Summed log-probability of `choice` as the continuation of `question`. The two are tokenized
// together (so merges across the boundary are the model's own), and the continuation is what
// follows the longest common prefix with the question's own tokens.
double choice_logprob(const EvalModel& m, const std::string& question, const std::string& choice) {
  const bool need_space = !question.empty() && !choice.empty() && !std::isspace(static_cast<unsigned char>(question.back())) &&
                          !std::isspace(static_cast<unsigned char>(choice.front()));
  const std::vector<int32_t> ctx = m.tok->encode(question, true, false);
  const std::vector<int32_t> full = m.tok->encode(question + (need_space ? " " : "") + choice, true, false);
  size_t common = 0;
  while (common < ctx.size() && common < full.size() && ctx[common] == full[common]) ++common;
  common = std::max<size_t>(common, 1);  // the first token has no prediction to score
  if (common >= full.size()) return 0;
  // The whole sequence goes through one session: its cost grows with the square of the length
  // (a 100 kB choice took minutes and half a gigabyte), and past the trained context the
  // scores mean nothing anyway.
  const int train_ctx = m.model->config().n_ctx_train;
  TEMPER_CHECK(train_ctx <= 0 || full.size() <= size_t(train_ctx), "question and choice are ", full.size(),
               " tokens, more than the model's context of ", train_ctx);
  forward::Session s(*m.model, int(full.size()));
  const std::vector<float> logits = s.eval(full, true);
  const size_t V = size_t(m.n_vocab());
  double lp = 0;
  for (size_t p = common; p < full.size(); ++p) {
    const std::span<const float> row(&logits[(p - 1) * V], V);
    lp += double(row[size_t(full[p])]) - log_sum_exp(row);
  }
  return lp;
}

}  // namespace

TaskResults run_tasks(const EvalModel& m, const std::vector<TaskItem>& tasks, int max_new) {
  TaskResults r;
  Progress bar("tasks " + m.path, tasks.size(), /*bytes=*/false);
  const bool chat = !m.chat_template().empty();
  for (const TaskItem& t : tasks) {
    TaskOutcome o;
    try {
      if (!t.choices.empty()) {
        int best = 0;
        double best_lp = 0;
        for (size_t c = 0; c < t.choices.size(); ++c) {
          const double lp = choice_logprob(m, t.question, t.choices[c]);
          if (c == 0 || lp > best_lp) best = int(c), best_lp = lp;
        }
        o.given = std::to_string(best);
        o.correct = best == t.answer_index;
      } else {
        const std::vector<int32_t> prompt = prompt_tokens(m, t.question, chat);
        const std::vector<int32_t> out = generate_tokens(m, prompt, max_new, SamplingOptions{});
        o.given = extract_answer(m.tok->decode(out), t.numeric);
        o.correct = !o.given.empty() && o.given == t.answer;
      }
    } catch (const Error& e) {
      fail(t.where, ": ", e.what());
    }
    r.correct += o.correct;
    r.items.push_back(std::move(o));
    bar.add(1);
  }
  return r;
}

}  // namespace temper::verify
