// The training loop (see trainer.h). Examples are visited in file order, `batch` of them
// packed per micro-batch, `grad_accum` micro-batches per optimiser step, wrapping around at
// the end of the data (epochs). The loss of a step is the sum of the token losses of all its
// micro-batches over the number of trained tokens in all of them (not a mean of micro-batch
// means), so every micro-batch backpropagates with grad_scale = 1 / that count.
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "model/open_model.h"
#include "tokenizer/tokenizer.h"
#include "train/adapter_file.h"
#include "train/data.h"
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

Json options_json(const TrainOptions& o) {
  return {{"data", o.data},         {"rank", o.rank},         {"alpha", o.alpha},
          {"rslora", o.rslora},     {"targets", o.targets},   {"lr", o.lr},
          {"steps", o.steps},       {"epochs", o.epochs},     {"batch", o.batch},
          {"grad_accum", o.grad_accum}, {"seq", o.seq},       {"warmup", o.warmup},
          {"schedule", o.schedule}, {"weight_decay", o.weight_decay}, {"clip", o.clip},
          {"seed", o.seed}, {"train_on", o.train_on}, {"drop_long", o.drop_long},
          {"val", o.val},   {"val_split", o.val_split}};
}

// Mean negative log-likelihood per trained token of `examples`, forward only (the adapters
// are not touched): the sum of the example losses over the number of trained tokens.
double validation_loss(LoraModel& lora, const std::vector<Example>& examples) {
  double sum = 0;
  int64_t n = 0;
  for (const Example& e : examples) {
    const Batch b = pack({e});
    sum += lora.loss(b);
    n += b.n_trained();
  }
  return sum / double(n);
}

}  // namespace

void run_train(const TrainOptions& o) {
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

  LoraModel lora(*base, {.rank = o.rank, .alpha = o.alpha, .rslora = o.rslora,
                         .targets = targets, .seed = o.seed});
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
  info("training ", n_params, " adapter parameters (", lora.pairs().size(), " adapters, rank ",
       o.rank, ") on ", examples.size(), " examples; ", total,
       " steps of ", per_step, " examples");
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

  Progress bar("train", uint64_t(total), false);
  size_t next = 0;  // next example, in file order, wrapping around
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_seen = 0;
  for (int64_t step = 0; step < total; ++step) {
    std::vector<Batch> micro;
    int64_t n_trained = 0;
    for (int a = 0; a < o.grad_accum; ++a) {
      std::vector<Example> part;
      for (int b = 0; b < o.batch; ++b) {
        part.push_back(examples[next]);
        next = (next + 1) % examples.size();
      }
      micro.push_back(pack(part));
      n_trained += micro.back().n_trained();
    }
    TEMPER_CHECK(n_trained > 0, "step ", step + 1, ": no trained token in its examples");
    lora.zero_grads();
    double loss_sum = 0;
    for (const Batch& b : micro) {
      loss_sum += lora.forward_backward(b, float(1.0 / double(n_trained)));
      tokens_seen += int64_t(b.tokens.size());
    }
    const double loss = loss_sum / double(n_trained);
    TEMPER_CHECK(std::isfinite(loss), "step ", step + 1, ": the loss is ", loss,
                 "; stopping (no adapter written)");
    const double norm = clip_grad_norm(grads, o.clip);
    const double lr = learning_rate(schedule, o.lr, step, o.warmup, total);
    opt.step(params, cgrads, lr);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool validate = !val_examples.empty() &&
                          (step + 1 == total || (o.val_every > 0 && (step + 1) % o.val_every == 0));
    const double val_loss = validate ? validation_loss(lora, val_examples) : NAN;
    if (validate) info("step ", step + 1, ": validation loss ", val_loss);
    if (o.json) {
      Json line = {{"step", step + 1}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                   {"trained_tokens", n_trained}, {"tokens_per_s", tokens_seen / secs}};
      if (validate) line["val_loss"] = val_loss;
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    }
    bar.set_label(cat("train loss ", loss));
    bar.set(uint64_t(step + 1));
  }
  bar.finish();
  if (total == 0 && !val_examples.empty()) {  // --steps 0: the initial adapter's validation loss
    const double val_loss = validation_loss(lora, val_examples);
    info("step 0: validation loss ", val_loss);
    if (o.json) {
      std::printf("%s\n", Json({{"step", 0}, {"val_loss", val_loss}}).dump().c_str());
      std::fflush(stdout);
    }
  }
  write_adapter(o.output, o.overwrite, lora, opened.desc, o.model, options_json(o).dump());
  info("wrote ", o.output);
}

}  // namespace temper::train
