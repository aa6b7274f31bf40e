// The architecture registry: the one table of supported architectures, lookup by id or by
// config.json "architectures" name, and expansion of a TensorSpec table for a config.
#include "core/error.h"
#include "model/arch.h"

namespace temper {

// One line per architecture: its ArchSpec, defined in runtime/model/arch/<id>.cpp (declared
// here, where it is used: arch files have no header). The array's size is the compiler's.
#define TEMPER_ARCHS(X) \
  X(kLlamaArch)         \
  X(kGemma3Arch)        \
  X(kGemma4Arch)        \
  X(kQwen3Arch)         \
  X(kQwen3MoeArch)      \
  X(kMistralArch)       \
  X(kPhi3Arch)

#define TEMPER_DECLARE_ARCH(name) extern const ArchSpec name;
TEMPER_ARCHS(TEMPER_DECLARE_ARCH)

namespace {
#define TEMPER_ARCH_ADDRESS(name) &name,
constexpr const ArchSpec* kArchs[] = {TEMPER_ARCHS(TEMPER_ARCH_ADDRESS)};
}  // namespace

std::span<const ArchSpec* const> all_archs() { return kArchs; }

const ArchSpec* find_arch_by_id(std::string_view id) {
  for (const ArchSpec* a : kArchs)
    if (a->id == id) return a;
  return nullptr;
}

const ArchSpec* find_arch_by_gguf_name(std::string_view gguf_arch) {
  for (const ArchSpec* a : kArchs)
    if (a->gguf_arch == gguf_arch && a->gguf_read) return a;
  return nullptr;
}

const ArchSpec& find_arch_by_hf_name(std::string_view hf_architecture) {
  std::string supported;
  for (const ArchSpec* a : kArchs) {
    for (std::string_view name : a->hf_architectures) {
      if (name == hf_architecture) return *a;
      supported += cat(supported.empty() ? "" : ", ", name);
    }
  }
  fail("unsupported architecture '", hf_architecture, "'; temper supports: ", supported);
}

std::string expand_name(std::string_view pattern, int layer, int expert) {
  std::string out;
  out.reserve(pattern.size() + 8);
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i, 3) == "{L}" || pattern.substr(i, 3) == "{E}") {
      const int value = pattern[i + 1] == 'L' ? layer : expert;
      TEMPER_CHECK(value >= 0, "tensor name pattern '", pattern, "' needs a ",
                   pattern[i + 1] == 'L' ? "layer" : "expert", " index");
      out += std::to_string(value);
      i += 3;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

namespace {

// `name` is `pattern` with each {L}/{E} replaced by a decimal number.
bool matches_pattern(std::string_view pattern, std::string_view name) {
  size_t i = 0, j = 0;
  while (i < pattern.size()) {
    if (pattern.substr(i, 3) == "{L}" || pattern.substr(i, 3) == "{E}") {
      const size_t start = j;
      while (j < name.size() && name[j] >= '0' && name[j] <= '9') ++j;
      if (j == start) return false;
      i += 3;
    } else {
      if (j >= name.size() || name[j] != pattern[i]) return false;
      ++i, ++j;
    }
  }
  return j == name.size();
}

}  // namespace

const TensorSpec* find_tensor_spec_by_gguf_name(const ArchSpec& arch, std::string_view gguf_name) {
  for (const TensorSpec& spec : arch.tensors)
    if (matches_pattern(spec.gguf_name, gguf_name)) return &spec;
  return nullptr;
}

namespace {

void add_expected(std::vector<ExpectedTensor>& out, const TensorSpec& spec,
                  const ModelConfig& cfg, int layer) {
  std::vector<int64_t> shape = spec.shape(cfg, layer);
  if (shape.empty()) return;
  // lm_head is optional only while it is tied to the embeddings.
  const bool required =
      !(spec.flags & kOptional) || (spec.role == TensorRole::kOutput && !cfg.tied_embeddings);
  const auto push = [&](int expert) {
    out.push_back(ExpectedTensor{
        .spec = &spec,
        .layer = layer,
        .expert = expert,
        .hf_name = expand_name(spec.hf_name, layer, expert),
        .gguf_name = expand_name(spec.gguf_name, layer),  // experts are stacked in GGUF
        .shape = shape,
        .required = required,
    });
  };
  if (!(spec.flags & kPerExpert)) {
    push(-1);
    return;
  }
  for (int e = 0; e < cfg.layers.at(layer).n_expert; ++e) push(e);
}

}  // namespace

bool is_fused_projection(TensorRole role) { return role == TensorRole::kAttnQkv || role == TensorRole::kFfnGateUp; }

std::vector<RowBlock> fused_row_blocks(TensorRole role, const LayerConfig& L) {
  const int64_t q = int64_t(L.n_head) * L.head_dim, kv = int64_t(L.n_head_kv) * L.head_dim;
  if (role == TensorRole::kAttnQkv) return {{TensorRole::kAttnQ, q}, {TensorRole::kAttnK, kv}, {TensorRole::kAttnV, kv}};
  if (role == TensorRole::kFfnGateUp) return {{TensorRole::kFfnGate, L.d_ff}, {TensorRole::kFfnUp, L.d_ff}};
  return {};
}

std::vector<ExpectedTensor> expected_tensors(const ArchSpec& arch, const ModelConfig& cfg) {
  std::vector<ExpectedTensor> out;
  for (const TensorSpec& spec : arch.tensors)
    if (!(spec.flags & kPerLayer)) add_expected(out, spec, cfg, -1);
  for (int l = 0; l < cfg.n_layer; ++l)
    for (const TensorSpec& spec : arch.tensors)
      if (spec.flags & kPerLayer) add_expected(out, spec, cfg, l);
  return out;
}

}  // namespace temper
