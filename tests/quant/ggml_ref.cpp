// dlopen wrapper around ggml's public quantization API; function types come from ggml.h of the
// same pinned release (TEMPER_GGML_INCLUDE_DIR), the library from TEMPER_GGML_LIB_DIR.
#include "quant/ggml_ref.h"

#include <dlfcn.h>

#include <string>

#include "core/error.h"
#include "ggml.h"

namespace temper::test {

struct GgmlRef::Fns {
  decltype(&ggml_quantize_chunk) quantize_chunk;
  decltype(&ggml_quantize_init) quantize_init;
  decltype(&ggml_get_type_traits) type_traits;
  decltype(&ggml_fp32_to_fp16) to_fp16;
  decltype(&ggml_fp32_to_bf16) to_bf16;
  decltype(&ggml_row_size) row_size;
};

namespace {
template <typename F>
F load(void* lib, const char* name, const std::string& path) {
  void* p = dlsym(lib, name);
  TEMPER_CHECK(p, "ggml reference ", path, ": symbol ", name, " not found");
  return reinterpret_cast<F>(p);
}
}  // namespace

GgmlRef::GgmlRef() : fns_(new Fns) {
  const std::string path = std::string(TEMPER_GGML_LIB_DIR) + "/libggml-base.so";
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  TEMPER_CHECK(lib, "cannot load the ggml reference ", path, " (run scripts/setup-llama-ref.sh): ", dlerror());
  fns_->quantize_chunk = load<decltype(fns_->quantize_chunk)>(lib, "ggml_quantize_chunk", path);
  fns_->quantize_init = load<decltype(fns_->quantize_init)>(lib, "ggml_quantize_init", path);
  fns_->type_traits = load<decltype(fns_->type_traits)>(lib, "ggml_get_type_traits", path);
  fns_->to_fp16 = load<decltype(fns_->to_fp16)>(lib, "ggml_fp32_to_fp16", path);
  fns_->to_bf16 = load<decltype(fns_->to_bf16)>(lib, "ggml_fp32_to_bf16", path);
  fns_->row_size = load<decltype(fns_->row_size)>(lib, "ggml_row_size", path);
}

GgmlRef& GgmlRef::get() {
  static GgmlRef ref;
  return ref;
}

size_t GgmlRef::quantize_chunk(DType t, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                               const float* imatrix) const {
  const auto type = static_cast<ggml_type>(t);
  fns_->quantize_init(type);
  return fns_->quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix);
}

void GgmlRef::to_float(DType t, const void* src, float* dst, int64_t n) const {
  const ggml_type_traits* tr = fns_->type_traits(static_cast<ggml_type>(t));
  TEMPER_CHECK(tr && tr->to_float, "ggml has no to_float for ", dtype_name(t));
  tr->to_float(src, dst, n);
}

uint16_t GgmlRef::fp32_to_fp16(float f) const { return fns_->to_fp16(f); }
uint16_t GgmlRef::fp32_to_bf16(float f) const { return fns_->to_bf16(f).bits; }
size_t GgmlRef::row_size(DType t, int64_t n_per_row) const {
  return fns_->row_size(static_cast<ggml_type>(t), n_per_row);
}

}  // namespace temper::test
