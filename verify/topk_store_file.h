// The base model's top-k reference saved to disk (`compare --save-base FILE`) and used instead of
// a fresh base pass (`compare --base-ref FILE`), like llama-perplexity's --kl-divergence-base.
//
// The file is HDF5 (h5py reads it; layout in save_base_reference's comment). It records what the
// numbers depend on: the scoring options (protocol, ctx, stride, chunks, max-tokens), top-k, the
// SHA-256 of the base model's files and of the text, the scored token ids and the SHA-256 of
// that list (the tokenizer's identity on this text). --base-ref refuses a file whose record
// differs from the run it is asked to stand in for, naming every difference.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/file.h"
#include "topk_store.h"
#include "windows.h"

namespace temper::verify {

struct BaseReference {
  // What a run must match to use the file.
  ScoringSpec scoring;  // stride as resolved by the plan
  int top_k = 0;
  int n_vocab = 0;
  int32_t bos = -1;               // the plan's BOS (-1: none)
  std::string base_sha256;        // sha256_of_path(base) (provenance.h)
  std::string text_sha256;        // SHA-256 of the text file's bytes
  std::string tokens_sha256;      // SHA-256 of `tokens` (int32 little-endian)
  std::vector<int32_t> tokens;    // the scored token list (ScoredText::tokens)
  size_t n_tokens_in_text = 0;
  // Where it came from (reported, never compared: files may move).
  std::string base_path, text_path;
  TopkStore store{1};
};

// Writes `ref` into `out`'s temporary file and commits it (renamed to its final name only when
// complete). `out` is made by the caller before the base pass, so a bad path fails early.
void save_base_reference(AtomicOutput& out, const BaseReference& ref);

// Reads a file written by save_base_reference. Throws Error naming the file and the object at
// fault (not HDF5, another format or version, inconsistent sizes).
BaseReference load_base_reference(const std::string& path);

// Throws Error "--base-ref FILE does not fit this run: <every difference>" unless `saved` was
// made with the same options, base model, text and tokens as `run` (whose store is unused).
void check_base_reference(const std::string& path, const BaseReference& saved, const BaseReference& run);

// SHA-256 over a model's bytes: the file itself, or for a folder every regular file in it
// (sorted by name; each as name, NUL, size, bytes). Shows a progress bar on a terminal.
std::string hash_tokens(std::span<const int32_t> tokens);

}  // namespace temper::verify
