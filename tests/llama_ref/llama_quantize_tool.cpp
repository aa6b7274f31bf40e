// Test harness, not temper code: runs llama.cpp's own llama_model_quantize (libllama of the
// release in .llama-ref, loaded with dlopen) so the tests can compare temper's GGUFs with what
// llama-quantize makes from the same input.
//   llama_quantize_tool LIBLLAMA IN.gguf OUT.gguf FTYPE_ID [--pure] [--imatrix FILE.dat]
// FILE.dat is llama.cpp's legacy imatrix format (values already normalised: ncall = 1).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "llama.h"

namespace {

struct Entry {
  std::string name;
  std::vector<float> values;
};

std::vector<Entry> read_legacy_imatrix(const char* path) {
  std::ifstream f(path, std::ios::binary);
  int32_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 4);
  std::vector<Entry> out(static_cast<size_t>(n));
  for (auto& e : out) {
    int32_t len = 0, ncall = 0, nval = 0;
    f.read(reinterpret_cast<char*>(&len), 4);
    e.name.resize(static_cast<size_t>(len));
    f.read(e.name.data(), len);
    f.read(reinterpret_cast<char*>(&ncall), 4);
    f.read(reinterpret_cast<char*>(&nval), 4);
    e.values.resize(static_cast<size_t>(nval));
    f.read(reinterpret_cast<char*>(e.values.data()), 4 * std::streamsize(nval));
    if (ncall > 0)
      for (float& v : e.values) v /= float(ncall);
  }
  if (!f) {
    std::fprintf(stderr, "cannot read imatrix %s\n", path);
    std::exit(2);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s LIBLLAMA IN.gguf OUT.gguf FTYPE_ID [--pure] [--imatrix FILE]\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  auto backend_init = reinterpret_cast<void (*)()>(dlsym(lib, "llama_backend_init"));
  auto defaults = reinterpret_cast<llama_model_quantize_params (*)()>(dlsym(lib, "llama_model_quantize_default_params"));
  auto quantize = reinterpret_cast<uint32_t (*)(const char*, const char*, const llama_model_quantize_params*)>(
      dlsym(lib, "llama_model_quantize"));
  if (!backend_init || !defaults || !quantize) {
    std::fprintf(stderr, "libllama lacks the quantize API\n");
    return 2;
  }
  backend_init();
  llama_model_quantize_params p = defaults();
  p.ftype = static_cast<llama_ftype>(std::atoi(argv[4]));
  p.nthread = 2;
  std::vector<Entry> entries;
  std::vector<llama_model_imatrix_data> im;
  for (int i = 5; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pure") == 0) p.pure = true;
    if (std::strcmp(argv[i], "--imatrix") == 0 && i + 1 < argc) entries = read_legacy_imatrix(argv[++i]);
  }
  if (!entries.empty()) {
    for (const auto& e : entries) im.push_back({e.name.c_str(), e.values.data(), e.values.size()});
    im.push_back({nullptr, nullptr, 0});
    p.imatrix = im.data();
  }
  return quantize(argv[2], argv[3], &p) == 0 ? 0 : 1;
}
