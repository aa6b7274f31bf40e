// The training loop (see trainer.h). Examples are visited in a seeded permutation per epoch
// (file order with --no-shuffle; data_order.h), `batch` of them packed per micro-batch,
// `grad_accum` micro-batches per optimiser step, running on into the next epoch's order. The
// loss of a step is the sum of the token losses of all its micro-batches over the number of
// trained tokens in all of them (not a mean of micro-batch means), so every micro-batch
// backpropagates with grad_scale = 1 / that count.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/threads.h"
#include "model/open_model.h"
#include "tokenizer/tokenizer.h"
#include "train/adapter_file.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/data_order.h"
#include "train/distributed.h"
#include "train/estimate.h"
#include "train/loss_curve.h"
#include "train/optimizer.h"
#include "train/train.h"

namespace temper::train {

namespace {

std::vector<Target> parse_targets(const std::string& list) {
  std::vector<Target> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, comma - start);
    const auto t = target_from_name(name);
    TEMPER_CHECK(t, "--targets: unknown module '", name,
                 "' (valid: q, k, v, o, gate, up, down, expert_gate, expert_up, expert_down)");
    if (std::find(out.begin(), out.end(), *t) == out.end()) out.push_back(*t);
    start = comma + 1;
  }
  return out;
}

// The compute type of the base products `--precision` asks for on this CPU, and the log line
// saying what runs and why.
std::pair<Precision, std::string> choose_precision(const std::string& asked) {
  TEMPER_CHECK(asked == "auto" || asked == "bf16" || asked == "f32", "--precision: '", asked,
               "' is not one of auto, bf16, f32");
  if (asked == "f32") return {Precision::kF32, "f32 (--precision f32)"};
  if (bf16_native())
    return {Precision::kBf16, cat("bf16 base products with f32 accumulation, f32 adapters (",
                                  gemm_bf16_describe(), ")")};
  const char* off = std::getenv("TEMPER_NO_BF16");
  return {Precision::kF32,
          cat("f32: ", off && std::string_view(off) != "0" ? "TEMPER_NO_BF16 is set"
                       : cat("this CPU has no native bf16 dot products (", gemm_bf16_describe(), ")"),
              asked == "bf16" ? "; --precision bf16 falls back to f32" : "")};
}

// `precision`: the one that runs (recorded so a resume cannot switch it).
Json options_json(const TrainOptions& o, Precision precision) {
  return {{"precision", precision_name(precision)},
          {"data", o.data},         {"rank", o.rank},         {"alpha", o.alpha},
          {"rslora", o.rslora},     {"targets", o.targets},   {"lr", o.lr},
          {"steps", o.steps},       {"epochs", o.epochs},     {"batch", o.batch},
          {"grad_accum", o.grad_accum}, {"seq", o.seq},       {"warmup", o.warmup},
          {"schedule", o.schedule}, {"weight_decay", o.weight_decay}, {"clip", o.clip},
          {"seed", o.seed}, {"shuffle", o.shuffle}, {"train_on", o.train_on}, {"drop_long", o.drop_long},
          {"val", o.val},   {"val_split", o.val_split}};
}

// Mean negative log-likelihood per trained token of `examples`, forward only (the adapters
// are not touched): the sum of the example losses over the number of trained tokens.
// Each rank of `world` takes examples rank, rank + size, ...; the sums meet in one allreduce.
double validation_loss(LoraModel& lora, const std::vector<Example>& examples, const World& world) {
  double sum_n[2] = {0, 0};
  for (size_t i = size_t(world.rank); i < examples.size(); i += size_t(world.size)) {
    const Batch b = pack({examples[i]});
    sum_n[0] += lora.loss(b);
    sum_n[1] += double(b.n_trained());
  }
  allreduce_sum(sum_n);
  return sum_n[0] / sum_n[1];
}

// One optimiser step's micro-batches on this rank: of the step's global batch (`batch` x
// `grad_accum` examples in data order) the examples rank, rank + size, ..., packed `batch` per
// micro-batch. With one rank: the data order's micro-batches as they come.
std::vector<Batch> rank_micro_batches(const std::vector<Example>& step_examples, int batch,
                                      const World& world) {
  std::vector<Batch> micro;
  std::vector<Example> part;
  for (size_t i = size_t(world.rank); i < step_examples.size(); i += size_t(world.size)) {
    part.push_back(step_examples[i]);
    if (int(part.size()) == batch) {
      micro.push_back(pack(part));
      part.clear();
    }
  }
  if (!part.empty()) micro.push_back(pack(part));
  return micro;
}

// Trained tokens of an example as pack() counts them (token i's target is trained when token
// i + 1 is): every rank counts the whole step's, so the loss scale needs no communication.
int64_t trained_tokens(const Example& e) {
  return e.trained.empty() ? 0 : std::count_if(e.trained.begin() + 1, e.trained.end(), [](uint8_t t) { return t != 0; });
}

// The LoRA gradients of every rank summed into every rank's: one allreduce through one buffer
// (a no-op with one rank).
void allreduce_gradients(const std::vector<std::span<float>>& grads, const World& world,
                         std::vector<float>& buffer) {
  if (world.size == 1) return;
  buffer.clear();
  for (const std::span<float>& g : grads) buffer.insert(buffer.end(), g.begin(), g.end());
  allreduce_sum(buffer);
  size_t at = 0;
  for (const std::span<float>& g : grads) {
    std::copy_n(buffer.begin() + ptrdiff_t(at), g.size(), g.begin());
    at += g.size();
  }
}

}  // namespace

void run_train(const TrainOptions& o, const World& world) {
  TEMPER_CHECK(o.batch > 0 && o.grad_accum > 0, "--batch and --grad-accum must be positive");
  TEMPER_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive");
  TEMPER_CHECK(o.steps >= 0 || o.epochs >= 0, "--epochs must not be negative");
  const Schedule schedule = schedule_from_name(o.schedule);
  const std::vector<Target> targets = parse_targets(o.targets);
  TEMPER_CHECK(std::filesystem::exists(o.model), "model ", o.model, ": no such file or folder");
  OpenedModel opened = open_model(o.model);
  // A GGUF base is trained in its stored type (QLoRA); forward::Model binds it as the
  // runtime does (llama.cpp names, the exact embedding scale).
  forward::LoadOptions load;
  load.gguf_names = opened.gguf_tensor_names;
  load.embed_scale_in_weight_dtype = opened.embed_scale_in_weight_dtype;
  auto base = forward::Model::load(*opened.tensors, opened.desc, load);
  const Tokenizer tok = Tokenizer::from_assets(opened.desc.tokenizer);
  TEMPER_CHECK(o.train_on == "completion" || o.train_on == "all",
               "--train-on: unknown value '", o.train_on, "' (valid: completion, all)");
  TEMPER_CHECK(o.val.empty() || o.val_split == 0, "--val and --val-split exclude each other");
  TEMPER_CHECK(o.val_every >= 0, "--val-every must not be negative");
  const ChatDataOptions data_opt{
      .seq = o.seq,
      .train_on = o.train_on == "all" ? TrainOn::kAll : TrainOn::kCompletion,
      .drop_long = o.drop_long,
      .chat_template = opened.desc.chat_template};
  ChatDataStats stats;
  std::vector<Example> examples = read_examples(o.data, tok, data_opt, stats);
  log_data_stats(o.data, stats);
  if (o.preview > 0) {  // look at the data, train nothing, write nothing
    if (!world.root()) return;
    const std::string text = preview_examples(examples, tok, o.preview, isatty(1) != 0);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return;
  }
  std::vector<Example> val_examples;
  if (!o.val.empty()) {
    ChatDataStats val_stats;
    val_examples = read_examples(o.val, tok, data_opt, val_stats);
    log_data_stats(o.val, val_stats);
  } else if (o.val_split != 0) {
    Split split = split_validation(std::move(examples), o.val_split, o.seed);
    examples = std::move(split.train);
    val_examples = std::move(split.val);
    info("--val-split ", o.val_split, ": ", val_examples.size(), " examples held out, ",
         examples.size(), " left to train on");
  }

  const auto [precision_choice, precision_why] = choose_precision(o.precision);
  const Precision precision = precision_choice;  // a plain variable: lambdas capture it
  LoraModel lora(*base, {.rank = o.rank, .alpha = o.alpha, .rslora = o.rslora,
                         .targets = targets, .seed = o.seed, .precision = precision});
  const int64_t per_step = int64_t(o.batch) * o.grad_accum;
  const int64_t total = o.steps >= 0 ? o.steps
                                    : int64_t(std::ceil(o.epochs * double(examples.size()) /
                                                        double(per_step)));
  int64_t n_params = 0;
  std::vector<size_t> sizes;
  for (const LoraPair& p : lora.pairs()) {
    sizes.push_back(p.a.size());
    sizes.push_back(p.b.size());
    n_params += int64_t(p.a.size() + p.b.size());
  }
  AdamW opt(sizes, {.weight_decay = o.weight_decay});
  std::vector<std::span<float>> params, grads;
  std::vector<std::span<const float>> cgrads;
  for (LoraPair& p : lora.pairs()) {
    params.emplace_back(p.a);
    params.emplace_back(p.b);
    grads.emplace_back(p.da);
    grads.emplace_back(p.db);
    cgrads.emplace_back(p.da);
    cgrads.emplace_back(p.db);
  }

  const TrainCost always_cost = estimate_train_cost(opened.desc.config, *opened.tensors, lora,
                                                    o.batch, o.grad_accum, o.seq);
  const RecomputeChoice choice = choose_recompute(o.recompute, always_cost);
  lora.set_recompute(choice.recompute);
  const TrainCost cost = choice.recompute ? always_cost : without_recompute(always_cost);
  const char* recompute_mode = choice.recompute ? "always" : "never";
  if (o.dry_run) {
    if (!world.root()) return;
    const std::string text =
        o.json ? Json{{"dry_run", true}, {"recompute", recompute_mode}, {"recompute_reason", choice.reason},
                      {"estimated_peak_rss_bytes", cost.peak_rss_bytes},
                      {"estimated_seconds_per_step", cost.seconds_per_step}}
                         .dump() + "\n"
               : cat(total, " steps of ", per_step, " examples\n", describe_cost(cost), "recompute: ", recompute_mode,
                     ": ", choice.reason, "\n");
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return;
  }

  // Identity of this run, recorded in the adapter and checked on --resume.
  const AdapterProvenance prov{.base_path = o.model,
                               .config_sha256 = base_config_sha256(opened.desc),
                               .tensors_sha256 = base_tensors_fingerprint(*opened.tensors),
                               .training_args_json = options_json(o, precision).dump()};
  const RunIdentity identity{
      .base_config_sha256 = prov.config_sha256,
      .base_tensors_sha256 = prov.tensors_sha256,
      .data_sha256 = file_sha256(o.data) + (o.val.empty() ? "" : "+" + file_sha256(o.val)),
      .training_args = options_json(o, precision)};
  TrainState state;
  state.threads = num_threads();
  if (!o.resume.empty()) {
    read_checkpoint(o.resume, lora, opt, state, identity);
    TEMPER_CHECK(state.step <= total, "--resume ", o.resume, ": the checkpoint is at step ",
                 state.step, ", past this run's ", total, " steps");
    TEMPER_CHECK(state.next_example < int64_t(examples.size()), "--resume ", o.resume,
                 ": data position ", state.next_example, " is outside the ", examples.size(),
                 " examples");
    if (state.threads != num_threads())
      warn("--resume: the checkpoint ran with ", state.threads, " threads, this run with ",
           num_threads(), ": the adapter will not be bit-identical to an uninterrupted run");
    info("resuming from ", o.resume, " at step ", state.step, " of ", total);
    state.threads = num_threads();
  }
  const std::string ckpt = checkpoint_path(o);
  info("training ", n_params, " adapter parameters (", lora.pairs().size(), " adapters, rank ",
       o.rank, ") on ", examples.size(), " examples; ", total,
       " steps of ", per_step, " examples");
  info("activations: ", choice.recompute ? "recomputed per layer" : "kept", "; ", choice.reason);
  info("compute: ", precision_why);
  if (world.size > 1) {
    info("data parallel: ", world.size, " ranks (MPI), ", num_threads(), " threads each; each step's ",
         per_step, " examples split between them, gradients summed by one allreduce");
    if (per_step < world.size)
      warn("--batch x --grad-accum = ", per_step, " examples per step: ", world.size - per_step,
           " of the ", world.size, " ranks have nothing to do");
  }

  Progress bar("train", uint64_t(total), false);
  bar.set(uint64_t(state.step));
  DataOrder order(examples.size(), o.seed, o.shuffle, state.epoch, size_t(state.next_example));
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t tokens_at_start = state.tokens_seen, steps_at_start = state.step;
  int64_t last_saved = o.resume.empty() ? -1 : state.step;
  std::vector<float> reduce_buffer;
  for (int64_t step = state.step; step < total; ++step) {
    std::vector<Example> step_examples;
    int64_t n_trained = 0, n_tokens = 0;
    for (int64_t i = 0; i < per_step; ++i) {
      step_examples.push_back(examples[order.next()]);
      n_trained += trained_tokens(step_examples.back());
      n_tokens += int64_t(step_examples.back().tokens.size());
    }
    TEMPER_CHECK(n_trained > 0, "step ", step + 1, ": no trained token in its examples");
    lora.zero_grads();
    double loss_sum[1] = {0};
    for (const Batch& b : rank_micro_batches(step_examples, o.batch, world))
      loss_sum[0] += lora.forward_backward(b, float(1.0 / double(n_trained)));
    // Wall time in the allreduce on this rank: the sum itself plus waiting for the slowest rank.
    const auto reduce_start = std::chrono::steady_clock::now();
    allreduce_gradients(grads, world, reduce_buffer);
    allreduce_sum(loss_sum);
    const double reduce_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce_start).count();
    state.tokens_seen += n_tokens;
    const double loss = loss_sum[0] / double(n_trained);
    const double norm = clip_grad_norm(grads, o.clip);
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      // The adapters are still those after the last good step: nothing of this step is
      // applied, and the last checkpoint (if any) is left as it is.
      bar.finish();
      const double bad = std::isfinite(loss) ? norm : loss;
      fail("step ", step + 1, ": the ", std::isfinite(loss) ? "gradient norm" : "loss", " is ",
           std::isnan(bad) ? "NaN" : bad > 0 ? "+Inf" : "-Inf", "; stopping, no adapter written (",
           last_saved >= 0 ? cat("the last good checkpoint is ", ckpt, " at step ", last_saved)
                           : std::string("no checkpoint saved: see --save-every"),
           "; a lower --lr may help)");
    }
    const double lr = learning_rate(schedule, o.lr, step, o.warmup, total);
    opt.step(params, cgrads, lr);
    state.step = step + 1;
    state.epoch = order.epoch();
    state.next_example = int64_t(order.position());
    state.curve.step.push_back(step + 1);
    state.curve.loss.push_back(loss);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tokens_per_s = double(state.tokens_seen - tokens_at_start) / secs;
    const bool validate = !val_examples.empty() &&
                          (step + 1 == total || (o.val_every > 0 && (step + 1) % o.val_every == 0));
    const double val_loss = validate ? validation_loss(lora, val_examples, world) : NAN;
    if (validate) {
      state.curve.val_step.push_back(step + 1);
      state.curve.val_loss.push_back(val_loss);
      if (!bar.visible()) info("step ", step + 1, ": validation loss ", val_loss);
    }
    if (o.json && world.root()) {
      Json line = {{"step", step + 1}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                   {"trained_tokens", n_trained}, {"tokens_per_s", tokens_per_s},
                   {"recompute", recompute_mode}, {"precision", precision_name(precision)}};
      if (world.size > 1) {
        line["ranks"] = world.size;
        line["allreduce_seconds"] = reduce_seconds;
      }
      if (validate) line["val_loss"] = val_loss;
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    }
    if (o.save_every > 0 && (step + 1) % o.save_every == 0 && world.root()) {
      try {
        write_checkpoint(ckpt, lora, opt, state, opened.desc, prov, identity);
      } catch (const Error& e) {
        bar.finish();
        fail(e.what(), "; step ", step + 1, " not saved, ",
             last_saved >= 0 ? cat("the previous checkpoint (step ", last_saved, ") is intact")
                             : std::string("no earlier checkpoint"));
      }
      last_saved = step + 1;
    }
    char label[96];
    const int used = std::snprintf(label, sizeof label, "train loss %.4f", loss);
    if (!state.curve.val_loss.empty())
      std::snprintf(label + used, sizeof label - size_t(used), " val %.4f", state.curve.val_loss.back());
    bar.set_label(cat(label, " ", std::lround(tokens_per_s), " tok/s"));
    bar.set(uint64_t(step + 1));
  }
  bar.finish();
  if (total == 0 && !val_examples.empty()) {  // --steps 0: the initial adapter's validation loss
    const double val_loss = validation_loss(lora, val_examples, world);
    info("step 0: validation loss ", val_loss);
    if (o.json && world.root()) {
      std::printf("%s\n", Json({{"step", 0}, {"val_loss", val_loss}}).dump().c_str());
      std::fflush(stdout);
    }
  }
  if (!world.root()) return;  // rank 0 writes the adapter and the loss curve
  write_adapter(o.output, o.overwrite, lora, opened.desc, prov);
  info("wrote ", o.output);
  {  // The loss curve beside it (replaced with the adapter: --force already allowed that).
    const std::string page_path = loss_curve_path(o.output);
    const std::string inputs[] = {o.model, o.data};
    AtomicOutput page(page_path, /*overwrite=*/true, inputs);
    const std::string page_text =
        loss_curve_html(state.curve, std::filesystem::path(o.output).filename().string());
    page.write(page_text.data(), page_text.size());
    page.commit();
    info("wrote ", page_path, " (loss curve)");
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (state.step > steps_at_start) {
    const double tokens_per_s = double(state.tokens_seen - tokens_at_start) / secs;
    const double est_tokens_per_s = double(cost.tokens_per_step) / cost.seconds_per_step;
    info("tokens/s: measured ", std::lround(tokens_per_s), ", estimated ",
         std::lround(est_tokens_per_s), "; peak RSS: measured ", human_bytes(peak_rss_bytes()),
         ", estimated ", human_bytes(cost.peak_rss_bytes));
  }
}

std::string checkpoint_path(const TrainOptions& o) {
  if (!o.checkpoint.empty()) return o.checkpoint;
  const std::string& out = o.output;
  if (out.size() > 3 && out.compare(out.size() - 3, 3, ".h5") == 0)
    return out.substr(0, out.size() - 3) + ".ckpt.h5";
  return out + ".ckpt.h5";
}

}  // namespace temper::train
