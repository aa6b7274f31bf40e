// The `temper train` run: data -> LoRA model -> AdamW steps -> adapter file. Internal to train/
// (the command line is in cli.cpp).
#pragma once
#include <string>

#include "train/distributed.h"

namespace temper::train {

struct TrainOptions {
  std::string model, data, output;
  int rank = 8;
  float alpha = 16;
  bool rslora = false;
  std::string targets = "q,k,v,o,gate,up,down";
  double lr = 1e-4;
  int64_t steps = -1;  // -1: from epochs; 0 writes the initial adapter
  double epochs = 1;
  int batch = 1;       // examples packed per micro-batch
  int grad_accum = 1;  // micro-batches per optimiser step
  int seq = 512;
  int64_t warmup = 0;
  std::string schedule = "linear";
  double weight_decay = 0.0;
  double clip = 1.0;  // max global gradient norm; <= 0: off
  uint64_t seed = 0;
  bool shuffle = true;  // a seeded permutation of the examples per epoch (data_order.h)
  bool json = false;   // one JSON line per step on stdout
  std::string train_on = "completion";  // completion | all (data_chat.h's prompt masking)
  bool drop_long = false;  // drop examples longer than seq instead of truncating them
  std::string val;         // validation data file ("" = none)
  double val_split = 0;    // > 0: hold out this fraction of the data for validation
  int64_t val_every = 0;   // > 0: validation loss every N steps (and always at the end)
  int preview = 0;         // > 0: print this many examples with the trained tokens marked, exit
  bool overwrite = false;
  int64_t save_every = 0;  // > 0: write a checkpoint every N optimiser steps
  std::string checkpoint;  // its path ("" = the output with .ckpt.h5 for .h5)
  std::string resume;      // checkpoint to continue from ("" = start afresh)
  std::string recompute = "auto";  // always | never | auto (estimate.h choose_recompute)
  // Compute type of the base-weight products: bf16 (f32 accumulation and adapters, as
  // autocast), f32, or auto: bf16 where the CPU has native bf16 dot products (gemm_bf16.h).
  std::string precision = "auto";
  bool dry_run = false;    // print the estimated RAM, time per step and trainable parameters, exit
};

// The checkpoint path of `o`: o.checkpoint, or o.output with ".h5" replaced by ".ckpt.h5".
std::string checkpoint_path(const TrainOptions& o);

// Trains and writes options.output. Throws Error naming the file/option at fault.
// `world`: the ranks of an MPI job sharing each step's examples (train/distributed.h).
void run_train(const TrainOptions& o, const World& world = {});

}  // namespace temper::train
