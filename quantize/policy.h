// Per-tensor type choice for a GGUF file type (Q4_K_M, Q8_0, ...): the same decisions as
// llama.cpp's llama-quantize (src/llama-quant.cpp: tensor_allows_quantization,
// llama_tensor_get_type_impl, tensor_type_fallback, of the llama.cpp release the tests load),
// so a temper GGUF has exactly the tensor types a llama.cpp-quantized one has.
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "model/arch.h"

namespace temper {

// Values are llama.cpp's `enum llama_ftype` (written as general.file_type).
enum class FileType : int {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10,
  kQ3_K_S = 11, kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16,
  kQ5_K_M = 17, kQ6_K = 18, kIQ4_NL = 25, kIQ4_XS = 30, kBF16 = 32,
};

struct FileTypeInfo {
  FileType type;
  std::string_view name;  // "Q4_K_M"
  DType default_type;     // llama_ftype_get_default_type
  bool ollama_can_requantize;  // accepted by `ollama create --quantize`
};

std::span<const FileTypeInfo> all_file_types();
const FileTypeInfo& file_type_info(FileType t);
// Case-insensitive; throws Error listing the valid names.
FileType parse_file_type(std::string_view name);

// One tensor as llama-quantize sees it: GGUF name, type in the unquantized GGUF, ggml ne, and
// its category — from the architecture's tensor table (TensorSpec::quant_class), which
// tests/model/arch_test.cpp checks against llama.cpp's name-substring rule.
struct PolicyTensor {
  std::string name;
  DType type;
  std::vector<int64_t> ne;  // ggml order: ne[0] = row length
  QuantClass quant_class = QuantClass::kOther;
};

// llama.cpp's category name for a class (src/llama-quant.cpp tensor_get_category), as the
// dry run shows it: "attn_v", "ffn_down", "output", ...; "other" for classes no rule names.
std::string_view policy_category_name(QuantClass c);

struct PolicyModel {
  std::string arch;   // GGUF arch string
  int n_layer = 0;
  int n_head = 0, n_head_kv = 0;  // of layer 0 (llama.cpp's n_gqa() default)
  int n_expert = 0;
};

struct PolicyOptions {
  FileType ftype = FileType::kQ4_K_M;
  bool pure = false;                      // --pure: no mix, default type everywhere
  bool has_imatrix = false;
  std::optional<DType> output_type;       // --output-tensor-type
  std::optional<DType> token_embd_type;   // --token-embedding-type
  std::vector<std::pair<std::string, DType>> overrides;  // --tensor-type REGEX=TYPE, first match wins
  bool quantize_output = true;            // false: --leave-output-tensor
};

struct TypeChoice {
  DType type;
  bool quantized = false;  // the type differs from the input and is a block type
  bool fallback = false;   // row size fitted no block of the chosen type (see note)
  std::string note;        // why, when not the plain default
  // Fixed by the user (--tensor-type, --output-tensor-type, --token-embedding-type) or by a
  // Q4_0 lattice (quantize/qat.h): recipes that choose types (--target-bpw) leave it.
  bool pinned = false;
};

// Sorts tensors the way llama.cpp's loader orders them (layer from "blk.N.", then name); the
// mix counters depend on this order, and the output file is written in it.
void sort_llama_order(std::vector<PolicyTensor>& tensors);

// Chooses the type of every tensor (in the given order; call sort_llama_order first).
// Throws Error for an invalid override regex.
std::vector<TypeChoice> choose_tensor_types(const PolicyModel& model, const PolicyOptions& opts,
                                            std::span<const PolicyTensor> tensors);

// Would llama-quantize quantize this tensor at all?
bool tensor_allows_quantization(std::string_view name, int n_dims, bool quantize_output);

}  // namespace temper
