// Training checkpoints (--save-every, --resume; layout in docs/adapter-format.md): an adapter
// file with a /checkpoint group holding everything a resumed run needs to continue exactly
// where the saved one was, so that the final adapter is bit-identical to an uninterrupted run
// (same seed and thread count): AdamW's moments and step count, the optimiser step, the data
// position, the loss curve so far, and the identity of the base, data and hyper-parameters.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "train/adapter_file.h"
#include "train/optimizer.h"
#include "train/train.h"

namespace temper::train {

// Per-step training loss and occasional validation loss, for the loss curve.
struct LossCurve {
  std::vector<int64_t> step;  // 1-based optimiser step
  std::vector<double> loss;
  std::vector<int64_t> val_step;
  std::vector<double> val_loss;
};

// The loop's position. The loop draws no random numbers after the adapters' initialisation
// (no dropout) except the example order, a pure function of (seed, epoch) (data_order.h), so
// the seed in the training arguments plus (epoch, next_example) is the whole RNG state; the
// seed is compared on resume like every other argument.
struct TrainState {
  int64_t step = 0;          // optimiser steps done
  int64_t epoch = 0;         // current pass over the data (0-based)
  int64_t next_example = 0;  // position of the next example in this epoch's order
  int64_t tokens_seen = 0;   // input tokens processed so far
  int threads = 0;           // thread count of the run (bit-identity holds for the same count)
  LossCurve curve;
};

// What must be the same for a resume: the base, the data, and the training arguments
// (a JSON object; keys in `may_differ` are not compared: output paths, logging, --threads).
struct RunIdentity {
  std::string base_config_sha256, base_tensors_sha256;
  std::string data_sha256;  // of the training data file (and the validation file, if any)
  Json training_args;
};

// Writes `path` atomically (temporary file, then rename): if writing fails (disk full), an
// existing checkpoint at `path` stays as it was. Throws Error naming the file.
void write_checkpoint(const std::string& path, const LoraModel& model, AdamW& opt,
                      const TrainState& state, const ModelDescription& base,
                      const AdapterProvenance& provenance, const RunIdentity& id);

// Reads `path` into `model` (adapters), `opt` (moments, step count) and `state`. Refuses,
// naming the first difference, a checkpoint of another base, other data or other
// hyper-parameters than `expected`, and adapters of another shape. Throws Error naming the
// file and object.
void read_checkpoint(const std::string& path, LoraModel& model, AdamW& opt, TrainState& state,
                     const RunIdentity& expected);

// SHA-256 of the bytes of a file (the training data); throws Error naming it.
std::string file_sha256(const std::string& path);

}  // namespace temper::train
