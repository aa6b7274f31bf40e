// `temper eval`, `temper compare` and `temper generate`.
#include <CLI/CLI.hpp>
#include <cmath>
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
#include "imatrix.h"
#include "verify.h"

namespace temper {
using namespace verify;

namespace {

// The options that decide what is scored, shared by eval and compare.
void add_scoring_options(CLI::App* cmd, ScoringSpec& s, std::string& protocol) {
  cmd->add_option("--ctx", s.ctx, "Window (chunk) length in tokens, BOS included")->capture_default_str();
  cmd->add_option("--stride", s.stride,
                  "Windows protocol: start a window every N text tokens (default: ctx-1, non-overlapping, every "
                  "token scored); smaller strides score each window's second half");
  cmd->add_option("--protocol", protocol,
                  "windows: [BOS]+text windows, every prediction scored; llama: llama-perplexity's chunks (whole "
                  "text tokenized with BOS, back-to-back ctx-token chunks starting with BOS, second half scored)")
      ->check(CLI::IsMember({"windows", "llama"}))
      ->capture_default_str();
  cmd->add_option("--chunks", s.chunks, "Score only the first N windows (llama: chunks), like llama-perplexity --chunks")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-tokens", s.max_tokens,
                  "Use only the first N tokens of the tokenized text (llama protocol: BOS included)")
      ->check(CLI::PositiveNumber);
}

void add_lora_option(CLI::App* cmd, std::vector<std::string>& loras) {
  cmd->add_option("--lora", loras,
                  "LoRA adapter (.h5 from temper train or lora import) applied to the model, optionally "
                  "scaled: ADAPTER[:SCALE]; repeat for several")
      ->take_all()
      ->allow_extra_args(false);
}

Protocol parse_protocol(const std::string& name) { return name == "llama" ? Protocol::kLlama : Protocol::kWindows; }

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Perplexity of a model over a text file");
  auto o = std::make_shared<EvalOptions>();
  auto protocol = std::make_shared<std::string>("windows");
  auto json = std::make_shared<bool>(false);
  cmd->add_option("model", o->model, "Hugging Face folder, temper checkpoint (.h5) or GGUF")->required();
  cmd->add_option("--text", o->text, "UTF-8 text file to score")->required();
  add_scoring_options(cmd, o->scoring, *protocol);
  add_lora_option(cmd, o->loras);
  cmd->add_flag("--json", *json, "Print the result as JSON on stdout");
  cmd->callback([o, protocol, json] {
    if (*json) set_log_level(LogLevel::kQuiet);
    o->scoring.protocol = parse_protocol(*protocol);
    const EvalReport r = run_eval(*o);
    if (*json)
      std::printf("%s\n", eval_json(r).dump(2).c_str());
    else
      print_eval(r);
  });
}

void add_compare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare", "Compare candidates (e.g. quantized GGUFs) with a base model: KL divergence, PPL ratio, top-1, tasks");
  auto o = std::make_shared<CompareOptions>();
  auto models = std::make_shared<std::vector<std::string>>();
  auto html = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto scoring = std::make_shared<ScoringSpec>();
  auto protocol = std::make_shared<std::string>("windows");
  cmd->add_option("models", *models, "BASE then one or more CANDIDATEs (HF folder, .h5 or GGUF)")->required();
  cmd->add_option("--text", o->text, "UTF-8 text file to score")->required();
  add_scoring_options(cmd, *scoring, *protocol);
  cmd->add_option("--top-k", o->top_k, "Base log-probs kept per token for the KL estimate")->capture_default_str();
  cmd->add_option("--tasks", o->tasks,
                  "JSONL questions: {\"question\",\"answer\"} (exact match) or {\"question\",\"choices\",\"answer\": index}");
  cmd->add_option("--task-tokens", o->task_tokens, "Tokens generated per exact-match question")->capture_default_str();
  cmd->add_option("--save-base", o->save_base,
                  "Save the base's top-k reference (HDF5, with the options and the base's and text's SHA-256) for "
                  "later runs with --base-ref; candidates are optional then");
  cmd->add_option("--base-ref", o->base_ref,
                  "Use a reference saved by --save-base instead of running BASE (BASE is hashed and must match, "
                  "as must the text and the scoring options)");
  cmd->add_option("--html", *html, "Write a self-contained HTML report (chart + tables)");
  add_lora_option(cmd, o->loras);
  cmd->add_flag("--json", *json, "Print the result as JSON on stdout");
  cmd->callback([o, models, scoring, protocol, html, json] {
    TEMPER_CHECK(models->size() >= 2 || (models->size() == 1 && (!o->save_base.empty() || !o->loras.empty())),
                 "compare needs a base model and at least one candidate (or --save-base, or --lora), got ",
                 models->size(), " model path(s)");
    o->ctx = scoring->ctx;
    o->stride = scoring->stride;
    o->protocol = parse_protocol(*protocol);
    o->chunks = scoring->chunks;
    o->max_tokens = scoring->max_tokens;
    o->base = models->front();
    o->candidates.assign(models->begin() + 1, models->end());
    if (*json) set_log_level(LogLevel::kQuiet);
    std::unique_ptr<AtomicOutput> out;
    if (!html->empty()) {  // checked before the run: an unwritable path should not cost a run
      std::vector<std::string> inputs = *models;
      inputs.push_back(o->text);
      if (!o->tasks.empty()) inputs.push_back(o->tasks);
      inputs.insert(inputs.end(), o->loras.begin(), o->loras.end());
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
    std::vector<std::string> loras;
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
  add_lora_option(cmd, o->loras);
  cmd->callback([o] {
    // Bad option values are usage errors (exit 2), as CLI11's own checks are.
    auto usage_check = [](bool ok, const std::string& option, const std::string& why) {
      if (!ok) throw CLI::ValidationError(option, why);
    };
    usage_check(o->n >= 0, "-n", cat(o->n, ": must not be negative"));
    usage_check(std::isfinite(o->sampling.temp) && o->sampling.temp >= 0, "--temp",
                cat(o->sampling.temp, ": must be a number >= 0 (0 = greedy)"));
    usage_check(o->sampling.top_p > 0 && o->sampling.top_p <= 1, "--top-p", cat(o->sampling.top_p, ": must be in (0, 1]"));
    usage_check(o->system.empty() || o->chat, "--system", "needs --chat");
    if (o->json) set_log_level(LogLevel::kQuiet);
    const auto m = load_eval_model(o->model, /*with_weights=*/true, o->loras);
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

void add_imatrix_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "imatrix", "Importance matrix for quantize --imatrix (and llama-quantize), as llama-imatrix collects it");
  auto o = std::make_shared<ImatrixOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("model", o->model, "Hugging Face folder, temper checkpoint (.h5) or GGUF")->required();
  auto* text = cmd->add_option("--text", o->text, "UTF-8 calibration text (tokenized with BOS, as llama-imatrix -f)");
  cmd->add_option("--data", o->data, "Chat JSONL (messages, prompt/completion, Alpaca, text records) rendered with "
                                     "the model's chat template")
      ->excludes(text);
  cmd->add_option("-o,--output", o->output, "Output imatrix (GGUF, or .dat with --legacy-dat)")->required();
  cmd->add_option("--ctx", o->ctx, "Chunk length in tokens (each chunk starts with BOS)")->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "Use only the first N chunks")->check(CLI::PositiveNumber);
  cmd->add_flag("--legacy-dat", o->legacy_dat, "Write llama.cpp's legacy .dat format instead of GGUF");
  cmd->add_option("--min-tokens", o->min_tokens,
                  "Report matrices and experts that saw fewer tokens (200: ~10% standard error of a column's "
                  "mean square for Gaussian activations)")
      ->capture_default_str();
  cmd->add_flag("--force", o->overwrite, "Overwrite an existing output");
  cmd->add_flag("--json", *json, "Print the result as JSON on stdout");
  cmd->callback([o, json] {
    if (o->text.empty() == o->data.empty()) throw CLI::ValidationError("--text/--data", "give exactly one of them");
    if (*json) set_log_level(LogLevel::kQuiet);
    const ImatrixReport r = run_imatrix(*o);
    if (*json)
      std::printf("%s\n", imatrix_json(r).dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    else
      print_imatrix(r, o->min_tokens);
  });
}

}  // namespace temper
