// PEFT LoRA folders in and out (adapter_config.json + adapter_model.safetensors), with PEFT's
// key names and shapes (../shared/docs/gguf-and-quantization.md §5.1): keys
// `base_model.model.<HF module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r],
// scaling lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <set>

#include "adapters/fused_lora.h"
#include "adapters/lora.h"
#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/half.h"
#include "core/json.h"
#include "core/log.h"
#include "core/sha256.h"
#include "formats/lora_adapter.h"
#include "formats/safetensors.h"
#include "formats/torch_pickle.h"
#include "forward/lora_apply.h"
#include "model/open_model.h"

namespace temper {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPeftPrefix = "base_model.model.";

// Multimodal HF classes (Gemma 3/4 *ForConditionalGeneration) hold the text decoder under
// model.language_model. (transformers >= 4.50); temper's module names are the canonical
// text-model ones ("model.layers.N...").
bool wraps_language_model(const std::string& hf_architecture) {
  return hf_architecture.ends_with("ForConditionalGeneration");
}

std::string peft_module(const std::string& module, const std::string& hf_architecture) {
  if (wraps_language_model(hf_architecture) && module.starts_with("model."))
    return "model.language_model." + module.substr(6);
  return module;
}

// The projection's short name for target_modules ("q_proj").
std::string leaf(const std::string& module) { return module.substr(module.rfind('.') + 1); }

// One PEFT module as written: its name in the HF model, rank and tensors.
struct PeftModule {
  std::string module;
  int64_t in = 0, out = 0, rank = 0;
  std::vector<float> a, b;  // (rank, in), (out, rank)
};

bool has_fused_tensors(const ArchSpec& arch) {
  for (const TensorSpec& t : arch.tensors)
    if (is_fused_projection(t.role)) return true;
  return false;
}

}  // namespace

void export_lora_peft(const std::string& adapter_path, const std::string& dir, bool overwrite,
                      const std::string& base_path) {
  const LoraAdapter a = read_lora_adapter(adapter_path);
  // Modules in the adapter's order; a fused tensor's blocks become one module where its first
  // block was.
  std::vector<PeftModule> modules;
  std::vector<std::string> inputs = {adapter_path};
  const ArchSpec* arch = find_arch_by_id(a.base_arch);
  if (arch && has_fused_tensors(*arch)) {
    TEMPER_CHECK(!base_path.empty(), "LoRA adapter ", escaped(adapter_path), ": a ", a.base_arch,
                 " model stores q/k/v (gate/up) as one fused tensor, which PEFT adapts as one module: give "
                 "--base BASE so the export knows its row blocks");
    const OpenedModel base = open_model(base_path);
    inputs.insert(inputs.end(), base.files.begin(), base.files.end());
    const std::vector<forward::LoraTarget> targets = forward::match_lora_to_base(base.desc, a, adapter_path);
    const auto fused = group_fused_targets(targets);
    std::set<std::string> written;
    for (const forward::LoraTarget& t : targets) {
      auto f = fused.find(t.tensor.hf_name);
      if (f == fused.end()) {
        modules.push_back({t.pair->module, t.pair->in, t.pair->out, a.rank, t.pair->a, t.pair->b});
      } else if (written.insert(f->first).second) {
        FusedLoraPair m = fuse_lora_blocks(f->second, a.rank);
        modules.push_back({f->first.substr(0, f->first.size() - 7), m.in, m.out, m.rank, std::move(m.a),
                           std::move(m.b)});
      }
    }
  } else {
    for (const LoraTensorPair& p : a.pairs) modules.push_back({p.module, p.in, p.out, a.rank, p.a, p.b});
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  TEMPER_CHECK(!ec && is_directory(dir), "cannot create folder ", escaped(dir), ": ", ec.message());
  std::set<std::string> targets;
  // A module of another rank (stacked blocks, n·r) keeps PEFT's scaling alpha/r (alpha/sqrt(r)
  // with rsLoRA) through rank_pattern and alpha_pattern: alpha_m = n·alpha (alpha·sqrt(n)). The
  // keys are the module's name from "layers.", which PEFT's get_pattern_key matches, in both its
  // older (.*\.KEY$) and newer ((.*\.)?(KEY)$) form, to this module only.
  OrderedJson rank_pattern = OrderedJson::object(), alpha_pattern = OrderedJson::object();
  OrderedJson header = OrderedJson::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const PeftModule& m : modules) {
    const std::string name = peft_module(m.module, a.base_hf_architecture);
    const std::string key = std::string(kPeftPrefix) + name;
    targets.insert(leaf(m.module));
    if (m.rank != a.rank) {
      const std::string pattern = name.substr(name.find("layers."));
      const double n = double(m.rank / a.rank);
      rank_pattern[pattern] = m.rank;
      alpha_pattern[pattern] = a.rslora ? double(a.alpha) * std::sqrt(n) : double(a.alpha) * n;
    }
    header[key + ".lora_A.weight"] = {{"dtype", "F32"}, {"shape", {m.rank, m.in}},
                                      {"data_offsets", {offset, offset + m.a.size() * 4}}};
    offset += m.a.size() * 4;
    header[key + ".lora_B.weight"] = {{"dtype", "F32"}, {"shape", {m.out, m.rank}},
                                      {"data_offsets", {offset, offset + m.b.size() * 4}}};
    offset += m.b.size() * 4;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data 8-byte aligned, as the safetensors writer pads
  AtomicOutput st((fs::path(dir) / "adapter_model.safetensors").string(), overwrite, inputs);
  const uint64_t n = h.size();
  st.write(&n, 8);
  st.write(h.data(), h.size());
  for (const PeftModule& m : modules) {
    st.write(m.a.data(), m.a.size() * 4);
    st.write(m.b.data(), m.b.size() * 4);
  }
  OrderedJson cfg = {{"peft_type", "LORA"},
                     {"task_type", "CAUSAL_LM"},
                     {"base_model_name_or_path", nullptr},
                     {"r", a.rank},
                     {"lora_alpha", a.alpha},
                     {"use_rslora", a.rslora},
                     {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
                     {"lora_dropout", 0.0},
                     {"bias", "none"},
                     {"fan_in_fan_out", false},
                     {"use_dora", false},
                     {"modules_to_save", nullptr},
                     {"init_lora_weights", true},
                     {"layers_to_transform", nullptr},
                     {"rank_pattern", rank_pattern},
                     {"alpha_pattern", alpha_pattern},
                     {"inference_mode", true}};
  const std::string cfg_text = cfg.dump(2) + "\n";
  AtomicOutput cj((fs::path(dir) / "adapter_config.json").string(), overwrite, inputs);
  cj.write(cfg_text.data(), cfg_text.size());
  st.commit();
  cj.commit();
  info("wrote ", dir, ": adapter_config.json and adapter_model.safetensors (", modules.size(), " adapted modules, r ",
       a.rank, ", lora_alpha ", a.alpha, a.rslora ? ", rsLoRA" : "", ")");
}

namespace {

// adapter_config.json options temper cannot represent: refused by key, never ignored.
void check_peft_config(const Json& c, const std::string& file) {
  auto refuse_if = [&](bool bad, const std::string& key, const std::string& why) {
    TEMPER_CHECK(!bad, file, ": ", key, " = ", escaped(c.contains(key) ? c[key].dump() : "?"), ": ", why);
  };
  TEMPER_CHECK(c.is_object(), file, ": not a JSON object");
  TEMPER_CHECK(c.contains("peft_type"), file, ": peft_type is missing");
  refuse_if(c["peft_type"] != "LORA", "peft_type", "only LORA adapters are supported");
  TEMPER_CHECK(c.contains("r") && c["r"].is_number_integer() && c["r"].get<int64_t>() > 0, file,
               ": r (the rank) is missing or not a positive integer");
  TEMPER_CHECK(c.contains("lora_alpha") && c["lora_alpha"].is_number(), file, ": lora_alpha is missing or not a number");
  auto truthy = [&](const char* k) {
    if (!c.contains(k) || c[k].is_null()) return false;
    const Json& v = c[k];
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_object() || v.is_array() || v.is_string()) return !v.empty() && v != "";
    return true;
  };
  refuse_if(truthy("use_dora"), "use_dora", "DoRA adapters are not supported (they add a magnitude vector)");
  refuse_if(c.contains("bias") && c["bias"] != "none", "bias", "adapters that train biases are not supported");
  refuse_if(truthy("lora_bias"), "lora_bias", "LoRA biases are not supported");
  refuse_if(truthy("modules_to_save"), "modules_to_save",
            "fully replaced modules (e.g. lm_head, embed_tokens) are not supported yet");
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    TEMPER_CHECK(!c.contains(k) || c[k].is_null() || c[k].is_object(), file, ": ", k, " must be an object");
  if (c.contains("rank_pattern") && c["rank_pattern"].is_object())
    for (const auto& [k, v] : c["rank_pattern"].items())
      TEMPER_CHECK(v.is_number_integer() && v.get<int64_t>() > 0, file, ": rank_pattern['", escaped(k),
                   "'] is not a positive integer");
  if (c.contains("alpha_pattern") && c["alpha_pattern"].is_object())
    for (const auto& [k, v] : c["alpha_pattern"].items())
      TEMPER_CHECK(v.is_number(), file, ": alpha_pattern['", escaped(k), "'] is not a number");
  refuse_if(truthy("fan_in_fan_out"), "fan_in_fan_out", "transposed (Conv1D) layers are not supported");
  refuse_if(truthy("layer_replication"), "layer_replication", "not supported");
  refuse_if(truthy("target_parameters"), "target_parameters", "parameter (MoE expert) targets are not supported yet");
  refuse_if(truthy("megatron_config"), "megatron_config", "not supported");
}

std::vector<float> to_f32(std::span<const uint8_t> bytes, DType t, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kF32) {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return out;
}

// PEFT's per-module value (peft/utils/other.py get_pattern_key): a pattern key applies to a
// module whose name matches (.*\.)?(KEY)$ as a regex; PEFT takes the first key in the file's
// order, which a parsed JSON object does not keep, so matching keys with different values are
// refused rather than guessed. Returns `fallback` when no key matches.
double pattern_value(const Json& c, const char* pattern, const std::string& module, double fallback,
                     const std::string& file) {
  if (!c.contains(pattern) || !c[pattern].is_object()) return fallback;
  std::optional<double> found;
  std::string found_key;
  for (const auto& [key, v] : c[pattern].items()) {
    std::regex re;
    try {
      re = std::regex("(.*\\.)?(" + key + ")");
    } catch (const std::regex_error&) {
      throw Error(cat(file, ": ", pattern, " key '", escaped(key), "' is not a regular expression temper reads"));
    }
    if (!std::regex_match(module, re)) continue;
    TEMPER_CHECK(!found || *found == v.get<double>(), file, ": ", pattern, " keys '", escaped(found_key), "' and '",
                 escaped(key), "' both match ", escaped(module), " with different values");
    found = v.get<double>();
    found_key = key;
  }
  return found.value_or(fallback);
}

// One PEFT module's tensors as read, before they become temper pairs of the adapter's rank.
struct PeftPair {
  std::string peft_module;  // as in the file, for messages and patterns
  LoraTensorPair p;
  int64_t rank = 0;  // lora_A's rows (rank_pattern's value, else r)
  double scale = 0;  // this module's PEFT scaling
};

// `q` as a pair of rank `rank` and scale `scale`: rank components whose B column is all zero
// add nothing and are dropped (temper's export of several blocks with their own A stacks them
// block-diagonally), a smaller rank is padded with zero components (both exact); a scale that
// differs is folded into B (one f32 rounding per element). Throws when more than `rank`
// components remain, naming the module.
LoraTensorPair to_adapter_rank(PeftPair q, int64_t rank, double scale, const std::string& who) {
  LoraTensorPair& p = q.p;
  if (q.rank != rank) {
    std::vector<int64_t> keep;
    for (int64_t k = 0; k < q.rank; ++k)
      for (int64_t o = 0; o < p.out; ++o)
        if (p.b[size_t(o * q.rank + k)] != 0.0f) {
          keep.push_back(k);
          break;
        }
    TEMPER_CHECK(int64_t(keep.size()) <= rank, who, ": '", escaped(q.peft_module), "' has rank ", q.rank,
                 " (rank_pattern) with ", keep.size(), " non-zero components, more than the adapter's r ", rank,
                 ": temper's adapters have one rank");
    std::vector<float> a(size_t(rank * p.in), 0.0f), b(size_t(p.out * rank), 0.0f);
    for (size_t j = 0; j < keep.size(); ++j) {
      std::memcpy(&a[j * size_t(p.in)], &p.a[size_t(keep[j] * p.in)], size_t(p.in) * 4);
      for (int64_t o = 0; o < p.out; ++o) b[size_t(o * rank) + j] = p.b[size_t(o * q.rank + keep[j])];
    }
    p.a = std::move(a);
    p.b = std::move(b);
  }
  // temper applies its scale in f32: a module scale that rounds to it is the same scale.
  if (float(q.scale) != float(scale))
    for (float& v : p.b) v = float(double(v) * (q.scale / scale));
  return std::move(p);
}

}  // namespace

void import_lora_peft(const std::string& dir, const std::string& base_path, const std::string& output,
                      bool overwrite) {
  TEMPER_CHECK(is_directory(dir), escaped(dir), ": not a folder (a PEFT adapter is a folder with adapter_config.json)");
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  // adapter_model.safetensors, else the adapter_model.bin older PEFT versions wrote (torch.save,
  // read without running its pickle: formats/torch_pickle.h).
  std::string st_path = (fs::path(dir) / "adapter_model.safetensors").string();
  TEMPER_CHECK(file_exists(cfg_path), escaped(cfg_path), ": no such file");
  const bool pickled = !file_exists(st_path) && file_exists((fs::path(dir) / "adapter_model.bin").string());
  if (pickled) st_path = (fs::path(dir) / "adapter_model.bin").string();
  TEMPER_CHECK(file_exists(st_path), escaped(st_path), ": no such file (nor adapter_model.bin)");
  const Json c = parse_json(read_text_file(cfg_path), cfg_path);
  check_peft_config(c, cfg_path);
  const OpenedModel base = open_model(base_path);
  const ModelDescription& desc = base.desc;

  LoraAdapter a;
  a.rank = c["r"].get<int>();
  a.alpha = c["lora_alpha"].get<float>();
  a.rslora = c.value("use_rslora", false);
  a.base_arch = std::string(desc.arch->id);
  a.base_hf_architecture = desc.config.hf_architecture;
  a.base_config_sha256 = desc.provenance.config_sha256.empty() && !desc.config_json.empty()
                             ? sha256_hex(desc.config_json)
                             : desc.provenance.config_sha256;
  a.training_args = Json({{"imported_from", dir}}).dump();

  const std::unique_ptr<TensorSource> st =
      pickled ? std::unique_ptr<TensorSource>(TorchStateDict::open(st_path)) : SafetensorsModel::open(st_path);
  std::map<std::string, size_t> index;
  std::vector<PeftPair> read;
  std::vector<uint8_t> scratch;
  for (const TensorInfo& t : st->tensors()) {
    const std::string who = cat(escaped(st_path), ": tensor '", escaped(t.name), "'");
    TEMPER_CHECK(t.name.starts_with(kPeftPrefix), who, ": not a PEFT LoRA key (expected 'base_model.model.…')");
    std::string rest = t.name.substr(kPeftPrefix.size());
    const bool is_a = rest.ends_with(".lora_A.weight"), is_b = rest.ends_with(".lora_B.weight");
    TEMPER_CHECK(is_a || is_b, who,
                 ": only lora_A/lora_B weights are supported (DoRA magnitudes, biases, embedding LoRA and "
                 "saved modules are not)");
    std::string module = rest.substr(0, rest.size() - std::string_view(".lora_A.weight").size());
    const std::string peft_module = module;
    // The text model's canonical name, whichever wrapper layout the checkpoint PEFT saw had
    // (model.language_model. since transformers 4.50, language_model.model. before).
    const std::optional<std::string> canonical = desc.arch->canonical_name(module);
    TEMPER_CHECK(canonical, who, ": adapts a vision/audio tower, which temper's text model does not run");
    module = *canonical;
    if (module.ends_with(".linear")) module.resize(module.size() - 7);  // Gemma 4 clippable-linear wrapper
    TEMPER_CHECK(t.shape.size() == 2, who, ": expected a matrix, got ", t.shape.size(), " dims");
    auto [it, fresh] = index.emplace(module, read.size());
    if (fresh) {
      read.push_back({});
      PeftPair& q = read.back();
      q.peft_module = peft_module;
      q.p.module = module;
      // PEFT's LoraModel matches patterns against the module's name in the model it wraps.
      const double r_m = pattern_value(c, "rank_pattern", peft_module, a.rank, cfg_path);
      const double alpha_m = pattern_value(c, "alpha_pattern", peft_module, a.alpha, cfg_path);
      q.rank = int64_t(r_m);
      q.scale = r_m == a.rank && alpha_m == double(a.alpha) ? double(a.scale())
                : a.rslora                                  ? alpha_m / std::sqrt(r_m)
                                                            : alpha_m / r_m;
    }
    PeftPair& q = read[it->second];
    LoraTensorPair& p = q.p;
    std::vector<float> v = to_f32(st->read(t, scratch), t.dtype, size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) TEMPER_CHECK(std::isfinite(v[i]), who, ": element ", i, " is ", v[i]);
    const char* r_from = q.rank == a.rank ? "r" : "its rank_pattern";
    if (is_a) {
      TEMPER_CHECK(t.shape[0] == q.rank, who, ": has ", t.shape[0], " rows but ", r_from, " is ", q.rank);
      p.in = t.shape[1];
      p.a = std::move(v);
    } else {
      TEMPER_CHECK(t.shape[1] == q.rank, who, ": has ", t.shape[1], " columns but ", r_from, " is ", q.rank);
      p.out = t.shape[0];
      p.b = std::move(v);
    }
  }
  TEMPER_CHECK(!read.empty(), escaped(st_path), ": holds no LoRA tensors");
  std::set<std::string> targets;
  for (const PeftPair& q : read) {
    TEMPER_CHECK(!q.p.a.empty(), escaped(st_path), ": ", escaped(q.p.module), ".lora_A.weight is missing");
    TEMPER_CHECK(!q.p.b.empty(), escaped(st_path), ": ", escaped(q.p.module), ".lora_B.weight is missing");
  }
  // A fused projection (Phi-3's qkv_proj, gate_up_proj) becomes its row blocks, which temper
  // adapts as separate projections: each block keeps A and takes its rows of B, so
  // s·B_block·A x is exactly the block's rows of s·B·A x.
  std::map<std::string, std::vector<forward::FusedBlock>> fused;
  for (const ExpectedTensor& e : expected_tensors(*desc.arch, desc.config))
    if (auto blocks = forward::fused_lora_blocks(e, desc.config); !blocks.empty())
      fused.emplace(e.hf_name.substr(0, e.hf_name.size() - 7), std::move(blocks));
  const double scale = a.scale();
  for (PeftPair& q : read) {
    auto f = fused.find(q.p.module);
    if (f == fused.end()) {
      a.pairs.push_back(to_adapter_rank(std::move(q), a.rank, scale, escaped(st_path)));
      continue;
    }
    int64_t rows = 0;
    for (const forward::FusedBlock& b : f->second) rows += b.rows;
    TEMPER_CHECK(q.p.out == rows, escaped(st_path), ": '", escaped(q.peft_module), "' lora_B has ", q.p.out,
                 " rows but the base's fused ", escaped(q.p.module), " has ", rows,
                 ": the adapter was made for another base");
    for (const forward::FusedBlock& b : f->second) {
      PeftPair part;
      part.peft_module = q.peft_module;
      part.rank = q.rank;
      part.scale = q.scale;
      part.p.module = b.module;
      part.p.in = q.p.in;
      part.p.out = b.rows;
      part.p.a = q.p.a;
      part.p.b.assign(q.p.b.begin() + b.row0 * q.rank, q.p.b.begin() + (b.row0 + b.rows) * q.rank);
      a.pairs.push_back(to_adapter_rank(std::move(part), a.rank, scale, escaped(st_path)));
    }
  }
  // Every module is one of the base's projections with its shape (names the tensor otherwise).
  for (const forward::LoraTarget& t : forward::match_lora_to_base(desc, a, dir)) {
    static constexpr const char* kSlotNames[] = {"q", "k", "v", "o", "gate", "up", "down"};
    targets.insert((t.tensor.expert >= 0 ? "expert_" : "") + std::string(kSlotNames[int(t.slot)]));
  }
  for (const char* n : {"q", "k", "v", "o", "gate", "up", "down", "expert_gate", "expert_up", "expert_down"})
    if (targets.count(n)) a.targets += (a.targets.empty() ? "" : ",") + std::string(n);
  std::vector<std::string> inputs = base.files;
  inputs.push_back(cfg_path);
  inputs.push_back(st_path);
  write_lora_adapter(output, overwrite, a, inputs);
  info("wrote ", output, ": ", a.pairs.size(), " adapted modules, r ", a.rank, ", lora_alpha ", a.alpha,
       a.rslora ? ", rsLoRA" : "", " (scale ", a.scale(), ")");
}

}  // namespace temper
