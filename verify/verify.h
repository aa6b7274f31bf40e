// The verify stage: `temper eval` (perplexity over a text), `temper compare` (a base model against
// any number of candidates: KL divergence, PPL ratio, top-1 agreement, task accuracy, HTML report)
// and `temper generate` (greedy or sampled continuation, optionally through the chat template).
#pragma once

namespace CLI {
class App;
}

namespace temper {

void add_eval_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_imatrix_command(CLI::App& app);

}  // namespace temper
