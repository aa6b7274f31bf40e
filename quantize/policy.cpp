// llama.cpp's per-tensor type rules, restated. Branches for file types temper does not offer
// (IQ1/IQ2/IQ3, TQ, MXFP4) are left out; every branch that can fire for the offered types is
// here, in llama.cpp's order, because the first matching branch wins.
#include "policy.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <regex>

#include "core/error.h"

namespace temper {
namespace {

using D = DType;
using F = FileType;

constexpr std::array<FileTypeInfo, 19> kFileTypes = {{
    {F::kF32, "F32", D::kF32, true},          {F::kF16, "F16", D::kF16, true},
    {F::kBF16, "BF16", D::kBF16, true},       {F::kQ8_0, "Q8_0", D::kQ8_0, true},
    {F::kQ4_0, "Q4_0", D::kQ4_0, false},      {F::kQ4_1, "Q4_1", D::kQ4_1, false},
    {F::kQ5_0, "Q5_0", D::kQ5_0, false},      {F::kQ5_1, "Q5_1", D::kQ5_1, false},
    {F::kQ2_K, "Q2_K", D::kQ2_K, false},      {F::kQ3_K_S, "Q3_K_S", D::kQ3_K, false},
    {F::kQ3_K_M, "Q3_K_M", D::kQ3_K, false},  {F::kQ3_K_L, "Q3_K_L", D::kQ3_K, false},
    {F::kQ4_K_S, "Q4_K_S", D::kQ4_K, true},   {F::kQ4_K_M, "Q4_K_M", D::kQ4_K, true},
    {F::kQ5_K_S, "Q5_K_S", D::kQ5_K, false},  {F::kQ5_K_M, "Q5_K_M", D::kQ5_K, false},
    {F::kQ6_K, "Q6_K", D::kQ6_K, false},      {F::kIQ4_NL, "IQ4_NL", D::kIQ4_NL, false},
    {F::kIQ4_XS, "IQ4_XS", D::kIQ4_XS, false},
}};

enum class Category { kOutput, kTokenEmbd, kAttnQkv, kAttnKvB, kAttnV, kAttnK, kAttnQ, kAttnOut, kFfnUp, kFfnGate, kFfnDown, kOther };

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// The architecture's class -> llama-quant.cpp's category. llama.cpp derives the category from
// GGUF-name substrings (tensor_get_category: "ffn_up" also matches ffn_up_exps, "ffn_gate" also
// ffn_gate_up_exps); the tensor tables carry it instead, and arch_test checks they agree.
Category category_of(QuantClass c) {
  using Q = QuantClass;
  switch (c) {
    case Q::kOutput: return Category::kOutput;
    case Q::kEmbedding: return Category::kTokenEmbd;
    case Q::kAttnQkv: return Category::kAttnQkv;
    case Q::kAttnV: return Category::kAttnV;
    case Q::kAttnK: return Category::kAttnK;
    case Q::kAttnQ: return Category::kAttnQ;
    case Q::kAttnOut: return Category::kAttnOut;
    case Q::kFfnUp:
    case Q::kFfnUpExps: return Category::kFfnUp;
    case Q::kFfnGate:
    case Q::kFfnGateExps:
    case Q::kFfnGateUpExps: return Category::kFfnGate;
    case Q::kFfnDown:
    case Q::kFfnDownExps: return Category::kFfnDown;
    case Q::kKeepF32:
    case Q::kOther: return Category::kOther;
  }
  return Category::kOther;
}

bool is_attn_v_like(Category c) { return c == Category::kAttnV || c == Category::kAttnQkv || c == Category::kAttnKvB; }

bool is_block_type(DType t) { return dtype_traits(t).block_elems > 1; }

int layer_of(std::string_view name) {
  int layer = -1;
  std::sscanf(std::string(name).c_str(), "blk.%d.", &layer);
  return layer;
}

// Roughly half the layers, denser at both ends: llama.cpp's use_more_bits.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct MixState {
  int n_attention_wv = 0, i_attention_wv = 0;
  int n_ffn = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
  bool tied = true;
};

// For MoE models the FFN layer is parsed from the name; otherwise it is the running counter.
int ffn_layer(const PolicyModel& m, int counter, std::string_view name) {
  if (std::max(1, m.n_expert) <= 1) return counter;
  const int layer = layer_of(name);
  TEMPER_CHECK(layer >= 0 && layer < m.n_layer, "tensor '", name, "': cannot determine its layer in [0, ", m.n_layer, ")");
  return layer;
}

// llama_tensor_get_type_impl for the offered file types.
DType mix_type(const PolicyModel& m, const PolicyOptions& o, MixState& s, DType t, const PolicyTensor& tensor, Category cat) {
  const F ft = o.ftype;
  const bool falcon = m.arch == "falcon";
  const int n_gqa = m.n_head_kv > 0 ? m.n_head / m.n_head_kv : 1;
  const bool is_70b = m.arch == "llama" && m.n_layer == 80 && m.n_head != m.n_head_kv;

  if (cat == Category::kOutput || (s.tied && cat == Category::kTokenEmbd)) {
    if (o.output_type) return *o.output_type;
    if (falcon || tensor.ne[0] % dtype_traits(t).block_elems != 0) return D::kQ8_0;
    return t != D::kQ8_0 ? D::kQ6_K : t;
  }
  if (cat == Category::kTokenEmbd) return o.token_embd_type ? *o.token_embd_type : t;

  if (is_attn_v_like(cat)) {
    if (ft == F::kQ2_K) t = n_gqa >= 4 ? D::kQ4_K : D::kQ3_K;
    else if (ft == F::kQ3_K_M) t = s.i_attention_wv < 2 ? D::kQ5_K : D::kQ4_K;
    else if (ft == F::kQ3_K_L) t = D::kQ5_K;
    else if ((ft == F::kIQ4_NL || ft == F::kIQ4_XS) && n_gqa >= 4) t = D::kQ5_K;
    else if ((ft == F::kQ4_K_M || ft == F::kQ5_K_M) && use_more_bits(s.i_attention_wv, s.n_attention_wv)) t = D::kQ6_K;
    else if (ft == F::kQ4_K_S && s.i_attention_wv < 4) t = D::kQ5_K;
    if (is_70b && (t == D::kQ3_K || t == D::kQ4_K)) t = D::kQ5_K;
    if (m.n_expert == 8) t = D::kQ8_0;
    ++s.i_attention_wv;
  } else if (cat == Category::kAttnK) {
    if (m.n_expert == 8) t = D::kQ8_0;
  } else if (cat == Category::kFfnDown) {
    const int i = ffn_layer(m, s.i_ffn_down, tensor.name), n = s.n_ffn;
    if (ft == F::kQ2_K) t = D::kQ3_K;
    else if (ft == F::kQ3_K_M) t = i < n / 16 ? D::kQ5_K : (!falcon || use_more_bits(i, n)) ? D::kQ4_K : D::kQ3_K;
    else if (ft == F::kQ3_K_L) t = falcon ? D::kQ4_K : D::kQ5_K;
    else if (ft == F::kQ4_K_M) {
      if (falcon) t = i < n / 16 ? D::kQ6_K : use_more_bits(i, n) ? D::kQ5_K : D::kQ4_K;
      else if (use_more_bits(i, n)) t = D::kQ6_K;
    } else if (i < n / 8 && (ft == F::kIQ4_NL || ft == F::kIQ4_XS) && !o.has_imatrix) t = D::kQ5_K;
    else if (ft == F::kQ5_K_M && use_more_bits(i, n)) t = D::kQ6_K;
    else if (ft == F::kQ4_K_S && !falcon && i < n / 8) t = D::kQ5_K;
    else if ((ft == F::kQ4_0 || ft == F::kQ5_0) && o.has_imatrix && i < n / 8)
      t = ft == F::kQ4_0 ? D::kQ4_1 : D::kQ5_1;  // guards the first ffn_down layers
    ++s.i_ffn_down;
  } else if (cat == Category::kAttnOut) {
    if (!falcon) {
      if (m.n_expert == 8) {
        if (ft == F::kQ2_K || ft == F::kQ3_K_S || ft == F::kQ3_K_M || ft == F::kIQ4_NL || ft == F::kQ4_K_S ||
            ft == F::kQ4_K_M || ft == F::kIQ4_XS)
          t = D::kQ5_K;
      } else if (ft == F::kQ2_K) t = D::kQ3_K;
      else if (ft == F::kQ3_K_M) t = D::kQ4_K;
      else if (ft == F::kQ3_K_L) t = D::kQ5_K;
    } else if (ft == F::kQ3_K_L) {
      t = D::kQ4_K;
    }
  } else if (cat == Category::kAttnQkv) {
    // Unreachable in llama.cpp too (attn_qkv is attn_v-like and handled above); kept out.
  } else if (cat == Category::kFfnGate) {
    ffn_layer(m, s.i_ffn_gate++, tensor.name);
  } else if (cat == Category::kFfnUp) {
    ffn_layer(m, s.i_ffn_up++, tensor.name);
  }
  return t;
}

// tensor_type_fallback: a row length that fits no block of the chosen type.
DType fallback_type(const PolicyTensor& tensor, DType t, bool& fell_back) {
  const int64_t ncols = tensor.ne[0];
  const int qk = dtype_traits(t).block_elems;
  if (ncols % qk == 0) return t;
  fell_back = true;
  DType r;
  switch (t) {
    case D::kIQ4_XS: r = D::kIQ4_NL; break;
    case D::kQ2_K:
    case D::kQ3_K: r = D::kQ4_0; break;
    case D::kQ4_K: r = D::kQ5_0; break;
    case D::kQ5_K: r = D::kQ5_1; break;
    case D::kQ6_K: r = D::kQ8_0; break;
    default: r = t; break;  // already a 32-block type: only F16 remains
  }
  return ncols % dtype_traits(r).block_elems == 0 ? r : D::kF16;
}

}  // namespace

std::string_view policy_category_name(QuantClass c) {
  switch (category_of(c)) {
    case Category::kOutput: return "output";
    case Category::kTokenEmbd: return "token_embd";
    case Category::kAttnQkv: return "attn_qkv";
    case Category::kAttnKvB: return "attn_kv_b";
    case Category::kAttnV: return "attn_v";
    case Category::kAttnK: return "attn_k";
    case Category::kAttnQ: return "attn_q";
    case Category::kAttnOut: return "attn_output";
    case Category::kFfnUp: return "ffn_up";
    case Category::kFfnGate: return "ffn_gate";
    case Category::kFfnDown: return "ffn_down";
    case Category::kOther: return "other";
  }
  return "other";
}

std::span<const FileTypeInfo> all_file_types() { return kFileTypes; }

const FileTypeInfo& file_type_info(FileType t) {
  for (const auto& f : kFileTypes)
    if (f.type == t) return f;
  fail("unknown file type id ", int(t));
}

FileType parse_file_type(std::string_view name) {
  auto same = [&](std::string_view candidate) {
    return candidate.size() == name.size() &&
           std::equal(name.begin(), name.end(), candidate.begin(),
                      [](char a, char b) { return std::toupper(uint8_t(a)) == std::toupper(uint8_t(b)); });
  };
  // llama-quantize's aliases (tools/quantize/quantize.cpp QUANT_OPTIONS: "alias for Q4_K_M").
  static constexpr std::pair<std::string_view, FileType> kAliases[] = {
      {"Q3_K", FileType::kQ3_K_M}, {"Q4_K", FileType::kQ4_K_M}, {"Q5_K", FileType::kQ5_K_M}};
  for (const auto& [alias, type] : kAliases)
    if (same(alias)) return type;
  std::string valid;
  for (const auto& f : kFileTypes) {
    if (same(f.name)) return f.type;
    valid += (valid.empty() ? "" : ", ") + std::string(f.name);
  }
  fail("unknown quantization type '", name, "'; valid types: ", valid, " (and the aliases Q3_K, Q4_K, Q5_K)");
}

bool tensor_allows_quantization(std::string_view name, int n_dims, bool quantize_output) {
  if (n_dims < 2) return false;
  if (!name.ends_with("weight")) return false;
  if (contains(name, "_norm.weight")) return false;
  if (!quantize_output && name == "output.weight") return false;
  for (std::string_view never : {"ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                                 "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "attn_rel_b.weight",
                                 ".position_embd", ".rel_pos", ".patch_embd", ".patch_merger"})
    if (contains(name, never)) return false;
  return name != "position_embd.weight" && name != "token_types.weight";
}

void sort_llama_order(std::vector<PolicyTensor>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const PolicyTensor& a, const PolicyTensor& b) {
    const int la = layer_of(a.name), lb = layer_of(b.name);
    return la != lb ? la < lb : a.name < b.name;
  });
}

std::vector<TypeChoice> choose_tensor_types(const PolicyModel& model, const PolicyOptions& opts,
                                            std::span<const PolicyTensor> tensors) {
  std::vector<std::pair<std::regex, DType>> overrides;
  for (const auto& [pattern, type] : opts.overrides) {
    try {
      overrides.emplace_back(std::regex(pattern), type);
    } catch (const std::regex_error& e) {
      fail("--tensor-type: invalid regular expression '", pattern, "': ", e.what());
    }
  }
  MixState s;
  s.n_ffn = model.n_layer;
  for (const auto& t : tensors) {
    const Category c = category_of(t.quant_class);
    if (is_attn_v_like(c)) ++s.n_attention_wv;
    if (c == Category::kOutput) s.tied = false;
  }
  const DType default_type = file_type_info(opts.ftype).default_type;

  std::vector<TypeChoice> out;
  for (const auto& t : tensors) {
    TypeChoice ch;
    ch.type = t.type;
    const Category cat = category_of(t.quant_class);
    const int n_dims = int(t.ne.size());
    if (!tensor_allows_quantization(t.name, n_dims, opts.quantize_output)) {
      out.push_back(ch);
      continue;
    }
    DType nt = default_type;
    if (opts.token_embd_type && cat == Category::kTokenEmbd) {
      nt = *opts.token_embd_type;
      ch.note = "--token-embedding-type";
      ch.pinned = true;
    } else if (opts.output_type && cat == Category::kOutput) {
      nt = *opts.output_type;
      ch.note = "--output-tensor-type";
      ch.pinned = true;
    } else if (is_block_type(default_type)) {
      bool manual = false;
      for (const auto& [re, type] : overrides) {
        if (std::regex_search(t.name, re)) {
          nt = type;
          manual = true;
          ch.note = "--tensor-type";
          ch.pinned = true;
          break;
        }
      }
      if (!manual && !opts.pure) {
        const DType mixed = mix_type(model, opts, s, nt, t, cat);
        if (mixed != nt) ch.note = "mix: " + std::string(policy_category_name(t.quant_class));
        nt = mixed;
      }
      const DType before = nt;
      nt = fallback_type(t, nt, ch.fallback);
      if (ch.fallback)
        ch.note = std::string("row length ") + std::to_string(t.ne[0]) + " fits no " + std::string(dtype_name(before)) +
            " block: " + std::string(dtype_name(nt));
    }
    ch.type = nt;
    ch.quantized = nt != t.type && is_block_type(nt);
    out.push_back(ch);
  }
  return out;
}

}  // namespace temper
