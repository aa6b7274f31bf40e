// A model opened for evaluation: weights bound for the forward pass, its tokenizer, and the size
// facts the reports need (file bytes, parameter count). Every error names the model's path.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/bits_per_weight.h"
#include "forward/forward.h"
#include "model/open_model.h"
#include "tokenizer/tokenizer.h"

namespace temper::verify {

struct EvalModel {
  std::string path;
  OpenedModel opened;
  std::unique_ptr<forward::Model> model;  // null when opened without weights
  std::unique_ptr<Tokenizer> tok;
  uint64_t file_bytes = 0;  // weight files only (*.safetensors of a folder; the .h5 / .gguf file)
  uint64_t n_params = 0;    // elements of every stored tensor
  uint64_t tensor_bytes = 0;  // stored bytes of those tensors (what bits per weight counts)
  int n_vocab() const { return opened.desc.config.n_vocab; }
  int n_ctx_train() const { return opened.desc.config.n_ctx_train; }
  double bits_per_weight() const { return temper::bits_per_weight(tensor_bytes, n_params); }
  const std::string& chat_template() const { return opened.desc.chat_template; }
  // "PATH" or, with adapters, "PATH + lora A.h5:0.5 + lora B.h5" (what the reports show).
  std::string label;
};

// Throws Error "cannot load model PATH: <reason>". Without `with_weights` only the headers and the
// tokenizer are read (the size facts, the tokenizer and the config, but no forward pass).
// `loras` are read, checked against the model (forward/lora_apply.h) and applied to its forward
// pass; an adapter for another base is refused naming the adapter file and tensor.
std::unique_ptr<EvalModel> load_eval_model(const std::string& path, bool with_weights = true,
                                           const std::vector<std::string>& loras = {});

// The text file's tokens (no BOS/EOS added). Throws Error naming a missing or empty file.
std::vector<int32_t> tokenize_text_file(const Tokenizer& tok, const std::string& path);

}  // namespace temper::verify
