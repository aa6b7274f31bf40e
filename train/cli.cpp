// The `temper train` subcommand: options -> TrainOptions -> run_train.
#include <CLI/CLI.hpp>

#include "core/log.h"
#include "train/distributed.h"
#include "train/train.h"
#include "train/trainer.h"

namespace temper::train {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "LoRA fine-tuning on the CPU (QLoRA on GGUF bases)");
  auto o = std::make_shared<TrainOptions>();
  cmd->add_option("model", o->model, "Base model: Hugging Face folder, temper checkpoint (.h5) or GGUF (trained in its stored type)")->required();
  cmd->add_option("--data", o->data, "Training data: .txt (chunks of --seq tokens) or .jsonl (messages, prompt/completion, Alpaca or text records)")->required();
  cmd->add_option("-o,--output", o->output, "Adapter file to write (.h5)")->required();
  cmd->add_option("--rank", o->rank, "LoRA rank")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "LoRA alpha (scale alpha/rank)")->capture_default_str();
  cmd->add_flag("--rslora", o->rslora, "Scale by alpha/sqrt(rank) (rsLoRA)");
  cmd->add_option("--targets", o->targets, "Projections to adapt (q,k,v,o,gate,up,down; MoE experts opt-in: expert_gate,expert_up,expert_down)")->capture_default_str();
  cmd->add_option("--lr", o->lr, "Peak learning rate (AdamW)")->capture_default_str();
  auto* steps = cmd->add_option("--steps", o->steps, "Optimiser steps (instead of --epochs; 0 writes the initial adapter)");
  cmd->add_option("--epochs", o->epochs, "Passes over the data (fractions allowed)")->capture_default_str()->excludes(steps);
  cmd->add_option("--batch", o->batch, "Examples packed per micro-batch")->capture_default_str();
  cmd->add_option("--grad-accum", o->grad_accum, "Micro-batches per optimiser step")->capture_default_str();
  cmd->add_option("--seq", o->seq, "Tokens per example (longer .jsonl records are truncated or, with --drop-long, dropped)")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Linear warm-up steps")->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "Learning-rate schedule: constant, linear, cosine")->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--clip", o->clip, "Max global gradient norm (0: off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the adapters' initialisation and of the example order")->capture_default_str();
  cmd->add_flag("--no-shuffle{false}", o->shuffle, "Visit the examples in file order (default: a seeded permutation per epoch)");
  cmd->add_flag("--json", o->json, "One JSON line per step on stdout (step, loss, lr, grad_norm, ...)");
  cmd->add_option("--train-on", o->train_on, "Tokens to train: completion (assistant answers and their end-of-turn token) or all")->capture_default_str();
  cmd->add_flag("--drop-long", o->drop_long, "Drop examples longer than --seq instead of truncating them");
  auto* val = cmd->add_option("--val", o->val, "Validation data (.txt or .jsonl)");
  cmd->add_option("--val-split", o->val_split, "Hold out this fraction of --data for validation")->excludes(val);
  cmd->add_option("--val-every", o->val_every, "Validation loss every N steps (always at the end)");
  cmd->add_option("--preview", o->preview, "Print N examples with the trained tokens marked and exit (no training)");
  cmd->add_option("--recompute", o->recompute, "Recompute each layer's activations in the backward (always: least memory), keep them from the forward (never: ~1/3 less work, bit-identical result), or auto: never when the estimate fits the available RAM")->check(CLI::IsMember({"always", "never", "auto"}))->capture_default_str();
  cmd->add_option("--precision", o->precision, "Compute type of the products with the base weights: bf16 (f32 accumulation, f32 adapters, as PyTorch autocast; where the CPU has AVX-512-BF16 or AMX), f32, or auto: bf16 where available")->check(CLI::IsMember({"auto", "bf16", "f32"}))->capture_default_str();
  cmd->add_flag("--dry-run", o->dry_run, "Print the estimated peak RAM, time per step and trainable parameters, and exit (no training)");
  cmd->add_flag("--force", o->overwrite, "Overwrite the output file");
  cmd->add_option("--save-every", o->save_every, "Write a checkpoint every N steps (atomically, replacing the previous one)");
  cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint file (default: the output with .ckpt.h5)");
  cmd->add_option("--resume", o->resume, "Continue from a checkpoint (same base, data and hyper-parameters; bit-identical to an uninterrupted run at the same --threads)");
  cmd->callback([o] {
    if (o->json) set_log_level(LogLevel::kQuiet);
    const World world = start_world();
    if (world.size == 1) {  // errors reach main() as for every command
      run_train(*o);
      end_world();  // (mpirun -np 1 started MPI)
      return;
    }
    if (!world.root()) set_log_level(LogLevel::kQuiet);  // rank 0 alone logs and writes
    try {
      run_train(*o, world);
    } catch (const std::exception& e) {
      abort_world(world, e.what());  // the other ranks may be waiting in an allreduce
    }
    end_world();
  });
}

}  // namespace temper::train
