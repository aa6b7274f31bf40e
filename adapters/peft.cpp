// PEFT LoRA folders in and out (adapter_config.json + adapter_model.safetensors), with PEFT's
// key names and shapes (../shared/docs/gguf-and-quantization.md §5.1): keys
// `base_model.model.<HF module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r],
// scaling lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

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

}  // namespace

void export_lora_peft(const std::string& adapter_path, const std::string& dir, bool overwrite) {
  const LoraAdapter a = read_lora_adapter(adapter_path);
  std::error_code ec;
  fs::create_directories(dir, ec);
  TEMPER_CHECK(!ec && is_directory(dir), "cannot create folder ", escaped(dir), ": ", ec.message());
  std::set<std::string> targets;
  OrderedJson header = OrderedJson::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const LoraTensorPair& p : a.pairs) {
    const std::string key = std::string(kPeftPrefix) + peft_module(p.module, a.base_hf_architecture);
    targets.insert(leaf(p.module));
    header[key + ".lora_A.weight"] = {{"dtype", "F32"}, {"shape", {a.rank, p.in}},
                                      {"data_offsets", {offset, offset + p.a.size() * 4}}};
    offset += p.a.size() * 4;
    header[key + ".lora_B.weight"] = {{"dtype", "F32"}, {"shape", {p.out, a.rank}},
                                      {"data_offsets", {offset, offset + p.b.size() * 4}}};
    offset += p.b.size() * 4;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data 8-byte aligned, as the safetensors writer pads
  const std::string inputs[] = {adapter_path};
  AtomicOutput st((fs::path(dir) / "adapter_model.safetensors").string(), overwrite, inputs);
  const uint64_t n = h.size();
  st.write(&n, 8);
  st.write(h.data(), h.size());
  for (const LoraTensorPair& p : a.pairs) {
    st.write(p.a.data(), p.a.size() * 4);
    st.write(p.b.data(), p.b.size() * 4);
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
                     {"rank_pattern", OrderedJson::object()},
                     {"alpha_pattern", OrderedJson::object()},
                     {"inference_mode", true}};
  const std::string cfg_text = cfg.dump(2) + "\n";
  AtomicOutput cj((fs::path(dir) / "adapter_config.json").string(), overwrite, inputs);
  cj.write(cfg_text.data(), cfg_text.size());
  st.commit();
  cj.commit();
  info("wrote ", dir, ": adapter_config.json and adapter_model.safetensors (", a.pairs.size(), " adapted modules, r ",
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
  refuse_if(truthy("rank_pattern"), "rank_pattern", "per-module ranks are not supported");
  refuse_if(truthy("alpha_pattern"), "alpha_pattern", "per-module alphas are not supported");
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
    // The text model's canonical name, whichever wrapper layout the checkpoint PEFT saw had
    // (model.language_model. since transformers 4.50, language_model.model. before).
    const std::optional<std::string> canonical = desc.arch->canonical_name(module);
    TEMPER_CHECK(canonical, who, ": adapts a vision/audio tower, which temper's text model does not run");
    module = *canonical;
    if (module.ends_with(".linear")) module.resize(module.size() - 7);  // Gemma 4 clippable-linear wrapper
    TEMPER_CHECK(t.shape.size() == 2, who, ": expected a matrix, got ", t.shape.size(), " dims");
    auto [it, fresh] = index.emplace(module, a.pairs.size());
    if (fresh) {
      a.pairs.push_back({});
      a.pairs.back().module = module;
    }
    LoraTensorPair& p = a.pairs[it->second];
    std::vector<float> v = to_f32(st->read(t, scratch), t.dtype, size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) TEMPER_CHECK(std::isfinite(v[i]), who, ": element ", i, " is ", v[i]);
    if (is_a) {
      TEMPER_CHECK(t.shape[0] == a.rank, who, ": has ", t.shape[0], " rows but r is ", a.rank);
      p.in = t.shape[1];
      p.a = std::move(v);
    } else {
      TEMPER_CHECK(t.shape[1] == a.rank, who, ": has ", t.shape[1], " columns but r is ", a.rank);
      p.out = t.shape[0];
      p.b = std::move(v);
    }
  }
  TEMPER_CHECK(!a.pairs.empty(), escaped(st_path), ": holds no LoRA tensors");
  std::set<std::string> targets;
  for (const LoraTensorPair& p : a.pairs) {
    TEMPER_CHECK(!p.a.empty(), escaped(st_path), ": ", escaped(p.module), ".lora_A.weight is missing");
    TEMPER_CHECK(!p.b.empty(), escaped(st_path), ": ", escaped(p.module), ".lora_B.weight is missing");
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
