// Registry-wide checks: they loop over all_archs(), so a new architecture is covered without
// editing them. Every tensor row's quantization class agrees with llama.cpp's name rule; every
// GGUF architecture name has exactly one reader; every architecture writes GGUF metadata and
// has a tiny model in scripts/tiny_models.py (which the agreement tests iterate).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "model/arch.h"
#include "quantize/policy.h"
#include "util/test_util.h"

namespace temper {
namespace {

// llama.cpp's tensor_get_category (src/llama-quant.cpp of the release in .llama-ref): GGUF-name
// substrings, first match wins. The independent reference for TensorSpec::quant_class.
std::string llama_cpp_category(std::string_view name) {
  auto has = [&](std::string_view part) { return name.find(part) != std::string_view::npos; };
  if (name == "output.weight") return "output";
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return "token_embd";
  if (has("attn_qkv.weight")) return "attn_qkv";
  if (has("attn_kv_b.weight")) return "attn_kv_b";
  if (has("attn_v.weight")) return "attn_v";
  if (has("attn_k.weight")) return "attn_k";
  if (has("attn_q.weight")) return "attn_q";
  if (has("attn_output.weight")) return "attn_output";
  if (has("ffn_up")) return "ffn_up";
  if (has("ffn_gate")) return "ffn_gate";
  if (has("ffn_down")) return "ffn_down";
  return "other";
}

// Only where the category matters: tensors llama-quantize quantizes (2-D assumed; 1-D ones it
// never does). The MoE router (ffn_gate_inp, "ffn_gate" by substring) and *.scale tensors are
// never quantized, so their class says what they are (kKeepF32/kOther), not the substring.
TEST(ArchRegistryWide, QuantClassIsLlamaCppsCategory) {
  int n_checked = 0;
  for (const ArchSpec* arch : all_archs()) {
    for (const TensorSpec& spec : arch->tensors) {
      const std::string name = expand_name(spec.gguf_name, 0, 0);
      if (!tensor_allows_quantization(name, 2, true)) continue;
      EXPECT_EQ(policy_category_name(spec.quant_class), llama_cpp_category(name)) << arch->id << " " << name;
      ++n_checked;
    }
  }
  EXPECT_GT(n_checked, 30);
}

TEST(ArchRegistryWide, GgufNamesResolveToTheirRow) {
  for (const ArchSpec* arch : all_archs())
    for (const TensorSpec& spec : arch->tensors)
      EXPECT_EQ(find_tensor_spec_by_gguf_name(*arch, expand_name(spec.gguf_name, 17, 3)), &spec)
          << arch->id << " " << spec.gguf_name;
  EXPECT_EQ(find_tensor_spec_by_gguf_name(*find_arch_by_id("llama"), "blk.x.attn_q.weight"), nullptr);
  EXPECT_EQ(find_tensor_spec_by_gguf_name(*find_arch_by_id("llama"), "rope_freqs.weight"), nullptr);
}

TEST(ArchRegistryWide, OneGgufReaderPerNameAndEveryArchWrites) {
  std::map<std::string_view, int> readers;
  std::set<std::string_view> ids;
  for (const ArchSpec* arch : all_archs()) {
    EXPECT_TRUE(ids.insert(arch->id).second) << "duplicate id " << arch->id;
    EXPECT_TRUE(arch->gguf_write.parameters && arch->gguf_write.vocab) << arch->id;
    readers[arch->gguf_arch] += arch->gguf_read.has_value();
  }
  for (const auto& [name, n] : readers) EXPECT_EQ(n, 1) << "GGUF architecture '" << name << "'";
  for (const auto& [name, n] : readers) EXPECT_EQ(find_arch_by_gguf_name(name)->gguf_arch, name);
}

TEST(ArchRegistryWide, EveryArchHasATinyModel) {
  std::set<std::string_view> covered;
  for (const auto& [name, hf_arch] : test::tiny_models()) covered.insert(find_arch_by_hf_name(hf_arch).id);
  for (const ArchSpec* arch : all_archs())
    EXPECT_TRUE(covered.count(arch->id)) << arch->id << " has no model in scripts/tiny_models.py";
}

}  // namespace
}  // namespace temper
