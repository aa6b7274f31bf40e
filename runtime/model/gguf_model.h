// Reads a GGUF file's metadata back into a ModelDescription, the inverse of temper's (and
// llama.cpp's converter's) GGUF metadata writer, with llama.cpp's loader semantics: the config
// describes the tensors as stored in the GGUF (interleaved RoPE for llama, Gemma norms already
// 1 + w, experts stacked), so the forward pass binds them by gguf_name.
#pragma once
#include "formats/gguf.h"
#include "model/model_desc.h"

namespace temper {

// Architecture from general.architecture (the registry's gguf_arch), ModelConfig from the
// <arch>.* keys and the tensor table (which layers have experts, K=V, layer scalars),
// rope_freq_factors from rope_freqs.weight, TokenizerAssets from tokenizer.ggml.*, chat
// template from tokenizer.chat_template. Throws Error naming the file and key at fault.
ModelDescription load_gguf_description(const GgufFile& f);

// Only the tokenizer: tokenizer.ggml.* as llama.cpp's loader reads them (absent add_* flags
// take the loader's defaults for the tokenizer model). Build it with TokenizerSource::kGguf.
TokenizerAssets load_gguf_tokenizer_assets(const GgufFile& f);

}  // namespace temper
