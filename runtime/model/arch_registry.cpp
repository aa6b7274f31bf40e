// The architecture registry: the one table of supported architectures, lookup by id or by
// config.json "architectures" name, and expansion of a TensorSpec table for a config.
#include <array>

#include "core/error.h"
#include "model/arch.h"

namespace temper {

// Defined in runtime/model/arch/<id>.cpp.
extern const ArchSpec kLlamaArch;
extern const ArchSpec kGemma3Arch;
extern const ArchSpec kGemma4Arch;
extern const ArchSpec kQwen3Arch;
extern const ArchSpec kQwen3MoeArch;

namespace {
constexpr std::array<const ArchSpec*, 5> kArchs = {
    &kLlamaArch, &kGemma3Arch, &kGemma4Arch, &kQwen3Arch, &kQwen3MoeArch,
};
}  // namespace

std::span<const ArchSpec* const> all_archs() { return kArchs; }

const ArchSpec* find_arch_by_id(std::string_view id) {
  for (const ArchSpec* a : kArchs)
    if (a->id == id) return a;
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
