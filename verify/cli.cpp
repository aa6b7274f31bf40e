// `temper eval`, `temper compare` and `temper generate`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "compare.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/terminal_text.h"
#include "eval.h"
#include "eval_model.h"
#include "generate.h"
#include "verify.h"

namespace temper {
using namespace verify;

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Perplexity of a model over a text file");
  auto o = std::make_shared<EvalOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("model", o->model, "Hugging Face folder, temper checkpoint (.h5) or GGUF")->required();
  cmd->add_option("--text", o->text, "UTF-8 text file to score")->required();
  cmd->add_option("--ctx", o->ctx, "Window length in tokens, BOS included")->capture_default_str();
  cmd->add_option("--stride", o->stride,
                  "Start a window every N text tokens (default: ctx-1, non-overlapping, every token scored); "
                  "smaller strides score each window's second half");
  cmd->add_flag("--json", *json, "Print the result as JSON on stdout");
  cmd->callback([o, json] {
    if (*json) set_log_level(LogLevel::kQuiet);
    const EvalReport r = run_eval(*o);
    if (*json) {
      std::printf("%s\n", eval_json(r).dump(2).c_str());
      return;
    }
    std::printf("%s on %s: %zu tokens, %zu scored (ctx %d, stride %d)\n", r.model.c_str(), r.text.c_str(),
                r.n_text_tokens, r.n_scored, r.ctx, r.stride);
    std::printf("mean NLL %.6f nats, PPL %.4f (95%% CI %.4f - %.4f), %s\n", r.nll.mean, r.ppl, r.ppl_lo, r.ppl_hi,
                human_duration(r.seconds).c_str());
  });
}

void add_compare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare", "Compare candidates (e.g. quantized GGUFs) with a base model: KL divergence, PPL ratio, top-1, tasks");
  auto o = std::make_shared<CompareOptions>();
  auto models = std::make_shared<std::vector<std::string>>();
  auto html = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("models", *models, "BASE then one or more CANDIDATEs (HF folder, .h5 or GGUF)")->required();
  cmd->add_option("--text", o->text, "UTF-8 text file to score")->required();
  cmd->add_option("--ctx", o->ctx, "Window length in tokens, BOS included")->capture_default_str();
  cmd->add_option("--stride", o->stride, "Start a window every N text tokens (default: non-overlapping)");
  cmd->add_option("--top-k", o->top_k, "Base log-probs kept per token for the KL estimate")->capture_default_str();
  cmd->add_option("--tasks", o->tasks,
                  "JSONL questions: {\"question\",\"answer\"} (exact match) or {\"question\",\"choices\",\"answer\": index}");
  cmd->add_option("--task-tokens", o->task_tokens, "Tokens generated per exact-match question")->capture_default_str();
  cmd->add_option("--html", *html, "Write a self-contained HTML report (chart + tables)");
  cmd->add_flag("--json", *json, "Print the result as JSON on stdout");
  cmd->callback([o, models, html, json] {
    TEMPER_CHECK(models->size() >= 2, "compare needs a base model and at least one candidate, got ", models->size(),
                 " model path(s)");
    o->base = models->front();
    o->candidates.assign(models->begin() + 1, models->end());
    if (*json) set_log_level(LogLevel::kQuiet);
    std::unique_ptr<AtomicOutput> out;
    if (!html->empty()) {  // checked before the run: an unwritable path should not cost a run
      std::vector<std::string> inputs = *models;
      inputs.push_back(o->text);
      if (!o->tasks.empty()) inputs.push_back(o->tasks);
      out = std::make_unique<AtomicOutput>(*html, /*overwrite=*/true, inputs);
    }
    const CompareReport r = run_compare(*o);
    if (out) {
      const std::string page = compare_html(r);
      out->write(page.data(), page.size());
      out->commit();
    }
    if (*json) {
      std::printf("%s\n", compare_json(r).dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    } else {
      print_compare_table(r);
      std::fflush(stdout);
      if (out) info("wrote ", *html);
    }
  });
}

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Continue a prompt (greedy by default), printing tokens as they come");
  struct Opts {
    std::string model, prompt, system;
    bool chat = false, json = false;
    int n = 128;
    SamplingOptions sampling;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("model", o->model, "Hugging Face folder, temper checkpoint (.h5) or GGUF")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  cmd->add_flag("--chat", o->chat, "Wrap the prompt in the model's chat template; stop at the end of the turn");
  cmd->add_option("--system", o->system, "System message (with --chat)");
  cmd->add_option("-n,--n-predict", o->n, "Maximum new tokens")->capture_default_str();
  cmd->add_option("--temp", o->sampling.temp, "Temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the K most likely tokens (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus sampling threshold")->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print prompt ids, new ids and text as JSON at the end instead of streaming");
  cmd->callback([o] {
    // Bad option values are usage errors (exit 2), as CLI11's own checks are.
    auto usage_check = [](bool ok, const std::string& option, const std::string& why) {
      if (!ok) throw CLI::ValidationError(option, why);
    };
    usage_check(o->n >= 0, "-n", cat(o->n, ": must not be negative"));
    usage_check(o->sampling.temp >= 0, "--temp", cat(o->sampling.temp, ": must not be negative"));
    usage_check(o->sampling.top_p > 0 && o->sampling.top_p <= 1, "--top-p", cat(o->sampling.top_p, ": must be in (0, 1]"));
    usage_check(o->system.empty() || o->chat, "--system", "needs --chat");
    if (o->json) set_log_level(LogLevel::kQuiet);
    const auto m = load_eval_model(o->model);
    if (o->chat && m->chat_template().empty())
      warn(o->model, " has no chat template: the prompt is used as plain text");
    const Prompt prompt = build_prompt(*m, o->prompt, o->chat, o->system);
    // -v (global): what the model is given, on stderr, so stdout stays the continuation.
    log_verbose("prompt text: \"" + escape_for_terminal(prompt.text) + "\"");
    log_verbose(cat("prompt ids (", prompt.ids.size(), "): ", Json(prompt.ids).dump()));
    std::function<void(std::string_view)> stream;
    if (!o->json)
      stream = [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      };
    GenerateTimings t;
    const std::vector<int32_t> ids = generate_tokens(*m, prompt.ids, o->n, o->sampling, stream, &t);
    if (o->json) {
      const Json j = {{"prompt_ids", prompt.ids}, {"new_ids", ids}, {"text", m->tok->decode(ids)}};
      // Generated bytes need not be valid UTF-8; replace rather than fail.
      std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
      std::fflush(stdout);
    }
    char line[160];
    std::snprintf(line, sizeof line, "prompt: %d tokens in %.3f s, %.1f tokens/s; decode: %d tokens in %.3f s, %.1f tokens/s",
                  t.n_prompt, t.prompt_seconds, t.prompt_seconds > 0 ? t.n_prompt / t.prompt_seconds : 0.0, t.n_decode,
                  t.decode_seconds, t.decode_seconds > 0 ? t.n_decode / t.decode_seconds : 0.0);
    log_verbose(line);
  });
}

}  // namespace temper
