// The `temper train` run: data -> LoRA model -> AdamW steps -> adapter file. Internal to train/
// (the command line is in cli.cpp).
#pragma once
#include <string>

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
  bool json = false;   // one JSON line per step on stdout
  bool overwrite = false;
};

// Trains and writes options.output. Throws Error naming the file/option at fault.
void run_train(const TrainOptions& o);

}  // namespace temper::train
