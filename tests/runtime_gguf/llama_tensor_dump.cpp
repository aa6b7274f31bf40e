// Test harness, not temper code: evaluates a GGUF with llama.cpp's libllama (the release in
// .llama-ref, loaded with dlopen) and writes the graph's named intermediate tensors, so a test
// can check llama.cpp's arithmetic op by op from its own inputs (tests/runtime_gguf/
// gemma4_ops_check.py).
//   llama_tensor_dump BINS_DIR MODEL.gguf TOKENS(comma-separated) OUT_DIR
// Same settings as llama_batch.mjs: one ubatch, f32 KV cache, no flash attention, one thread.
// Each contiguous f32 tensor NAME becomes OUT_DIR/NAME.f32 (raw little-endian) and
// OUT_DIR/NAME.shape (ggml ne[0..3]); names have '/' and ' ' replaced by '_'.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "ggml.h"
#include "llama.h"

namespace {

std::string g_out_dir;
bool g_write_failed = false;

bool write_tensor(struct ggml_tensor* t, bool ask, void*) {
  if (ask) return true;  // every node: we want to see them all
  const size_t n = size_t(t->ne[0]) * t->ne[1] * t->ne[2] * t->ne[3];
  const bool contiguous = t->nb[0] == 4 && t->nb[1] == 4 * size_t(t->ne[0]) &&
                          t->nb[2] == t->nb[1] * size_t(t->ne[1]) && t->nb[3] == t->nb[2] * size_t(t->ne[2]);
  if (t->type != GGML_TYPE_F32 || !contiguous || !t->data) return true;
  std::string name = t->name;
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  const std::string base = g_out_dir + "/" + name;
  FILE* f = std::fopen((base + ".f32").c_str(), "wb");
  FILE* s = std::fopen((base + ".shape").c_str(), "w");
  if (!f || !s || std::fwrite(t->data, 4, n, f) != n ||
      std::fprintf(s, "%lld %lld %lld %lld\n", (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                   (long long)t->ne[3]) < 0)
    g_write_failed = true;
  if (f) std::fclose(f);
  if (s) std::fclose(s);
  return true;
}

template <typename F>
F sym(void* lib, const char* name) {
  void* p = dlsym(lib, name);
  if (!p) {
    std::fprintf(stderr, "libllama lacks %s\n", name);
    std::exit(2);
  }
  return reinterpret_cast<F>(p);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s BINS_DIR MODEL.gguf TOKENS OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string bins = argv[1];
  void* ggml = dlopen((bins + "/libggml.v0.5.0.so").c_str(), RTLD_NOW | RTLD_GLOBAL);
  void* lib = ggml ? dlopen((bins + "/libllama.v0.5.0.so").c_str(), RTLD_NOW | RTLD_GLOBAL) : nullptr;
  if (!lib) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  sym<void (*)(const char*)>(ggml, "ggml_backend_load_all_from_path")(bins.c_str());  // the CPU backend
  sym<void (*)()>(lib, "llama_backend_init")();
  auto model_params = sym<llama_model_params (*)()>(lib, "llama_model_default_params")();
  model_params.n_gpu_layers = 0;
  llama_model* model =
      sym<llama_model* (*)(const char*, llama_model_params)>(lib, "llama_model_load_from_file")(argv[2], model_params);
  if (!model) return 1;

  std::vector<llama_token> ids;
  std::stringstream ss(argv[3]);
  for (std::string t; std::getline(ss, t, ',');) ids.push_back(std::stoi(t));
  g_out_dir = argv[4];

  auto cp = sym<llama_context_params (*)()>(lib, "llama_context_default_params")();
  cp.n_ctx = uint32_t(ids.size() + 128);
  cp.n_batch = cp.n_ubatch = 512;
  cp.n_threads = cp.n_threads_batch = 1;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.type_k = cp.type_v = GGML_TYPE_F32;
  cp.cb_eval = write_tensor;
  llama_context* ctx = sym<llama_context* (*)(llama_model*, llama_context_params)>(lib, "llama_init_from_model")(model, cp);
  if (!ctx) return 1;
  const llama_batch batch = sym<llama_batch (*)(llama_token*, int32_t)>(lib, "llama_batch_get_one")(ids.data(), int32_t(ids.size()));
  const int rc = sym<int32_t (*)(llama_context*, llama_batch)>(lib, "llama_decode")(ctx, batch);
  if (rc != 0 || g_write_failed) {
    std::fprintf(stderr, "llama_decode returned %d%s\n", rc, g_write_failed ? "; writing a tensor failed" : "");
    return 1;
  }
  return 0;
}
