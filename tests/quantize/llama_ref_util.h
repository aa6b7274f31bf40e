// Running the independent llama.cpp reference from tests: its HF converter, llama-quantize
// (libllama through tests/llama_ref/llama_quantize_tool), its inference (node-llama-cpp) and
// its GGUF reader (gguf-py, in gguf_compare.py).
#pragma once
#include <string>
#include <vector>

#include "util/test_util.h"

namespace temper::test {

std::string llama_ref_dir();
// convert_hf_to_gguf.py HF_DIR -> OUT (outtype f32/bf16/f16/q8_0); asserts success.
// no_vocab: skip the vocabulary (Gemma 4, Qwen3-MoE need transformers for theirs).
void reference_convert(const std::string& hf_dir, const std::string& out, const std::string& outtype = "f32",
                       bool no_vocab = false);
// llama_model_quantize(IN, OUT, ftype) (+ --pure / --imatrix FILE.dat); returns the exit code.
int reference_quantize(const std::string& in, const std::string& out, int ftype, const std::string& extra = "");
// gguf_compare.py A B ARGS: true when equal; `report` gets its JSON.
bool gguf_same(const std::string& a, const std::string& b, const std::string& args, std::string* report);
// Full-vocab logits of llama.cpp for `tokens` ([position][vocab]); vocab size out.
std::vector<float> reference_logits(const std::string& gguf, const std::vector<int>& tokens, int* vocab);
std::vector<int> reference_generate(const std::string& gguf, const std::vector<int>& prompt, int n);
// `temper ARGS`, asserting success; returns stdout.
std::string temper_ok(const std::string& args);

// Descriptive general.* keys the converter derives from folder names (Metadata heuristics).
inline const char* kDescriptiveKeys = "general.name,general.basename,general.finetune,general.size_label,general.version";

}  // namespace temper::test
