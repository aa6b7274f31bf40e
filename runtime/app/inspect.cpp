// `temper inspect FILE`: what a safetensors file/folder, temper checkpoint or GGUF holds:
// tensors, dtypes, shapes, metadata, parameter count, bytes and bits per weight; --json for
// scripts (GGUF values in full, as JSON of their own type). Names and strings from the file
// are printed escaped (core/terminal_text.h) and invalid UTF-8 never stops the JSON output.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "app/commands.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/terminal_text.h"
#include "formats/bits_per_weight.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/model_desc.h"
#include "model/open_model.h"

namespace temper {
namespace {

// general.file_type (llama.cpp's enum llama_ftype, include/llama.h): llama-quantize's name
// (tools/quantize/quantize.cpp QUANT_OPTIONS) and llama.cpp's own description
// (llama_ftype_name in src/llama-model-loader.cpp, what llama.cpp logs as "file type").
struct FtypeName {
  uint32_t id;
  const char* name;
  const char* llama_cpp;
};
constexpr FtypeName kFtypeNames[] = {
    {0, "F32", "all F32"},          {1, "F16", "F16"},
    {2, "Q4_0", "Q4_0"},            {3, "Q4_1", "Q4_1"},
    {7, "Q8_0", "Q8_0"},            {8, "Q5_0", "Q5_0"},
    {9, "Q5_1", "Q5_1"},            {10, "Q2_K", "Q2_K - Medium"},
    {11, "Q3_K_S", "Q3_K - Small"}, {12, "Q3_K_M", "Q3_K - Medium"},
    {13, "Q3_K_L", "Q3_K - Large"}, {14, "Q4_K_S", "Q4_K - Small"},
    {15, "Q4_K_M", "Q4_K - Medium"}, {16, "Q5_K_S", "Q5_K - Small"},
    {17, "Q5_K_M", "Q5_K - Medium"}, {18, "Q6_K", "Q6_K"},
    {19, "IQ2_XXS", "IQ2_XXS - 2.0625 bpw"}, {20, "IQ2_XS", "IQ2_XS - 2.3125 bpw"},
    {21, "Q2_K_S", "Q2_K - Small"}, {22, "IQ3_XS", "IQ3_XS - 3.3 bpw"},
    {23, "IQ3_XXS", "IQ3_XXS - 3.0625 bpw"}, {24, "IQ1_S", "IQ1_S - 1.5625 bpw"},
    {25, "IQ4_NL", "IQ4_NL - 4.5 bpw"}, {26, "IQ3_S", "IQ3_S - 3.4375 bpw"},
    {27, "IQ3_M", "IQ3_S mix - 3.66 bpw"}, {28, "IQ2_S", "IQ2_S - 2.5 bpw"},
    {29, "IQ2_M", "IQ2_M - 2.7 bpw"}, {30, "IQ4_XS", "IQ4_XS - 4.25 bpw"},
    {31, "IQ1_M", "IQ1_M - 1.75 bpw"}, {32, "BF16", "BF16"},
    {36, "TQ1_0", "TQ1_0 - 1.69 bpw ternary"}, {37, "TQ2_0", "TQ2_0 - 2.06 bpw ternary"},
    {38, "MXFP4_MOE", "MXFP4 MoE"}, {39, "NVFP4", "NVFP4"},
    {40, "Q1_0", "Q1_0"},           {41, "Q2_0", "Q2_0"},
};

// {"id", "name", "llama_cpp"}; an id llama.cpp does not define keeps only its number.
Json file_type_json(const GgufValue& v) {
  if (v.is_array() || v.elem_type() != GgufType::kU32) return {{"error", "general.file_type is " + v.type_str() + ", not u32"}};
  const uint32_t id = v.as<uint32_t>();
  for (const auto& f : kFtypeNames)
    if (f.id == id) return {{"id", id}, {"name", f.name}, {"llama_cpp", f.llama_cpp}};
  return {{"id", id}, {"name", "unknown"}, {"llama_cpp", "unknown, may not work"}};
}

// JSON numbers are doubles: an f32 goes through its shortest decimal form (1e-05, not
// 9.999999747378752e-06), which still reads back as the same f32.
double shortest_double(float f) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
  return std::strtod(std::string(buf, end).c_str(), nullptr);
}

template <typename T>
Json numeric_json(const GgufValue& v) {
  if constexpr (std::is_same_v<T, float>) {
    if (!v.is_array()) return Json(shortest_double(v.as<float>()));
    Json arr = Json::array();
    for (float f : v.as_array<float>()) arr.push_back(shortest_double(f));
    return arr;
  } else {
    if (v.is_array()) return Json(v.as_array<T>());
    return Json(v.as<T>());
  }
}

// The value as JSON of its own type, arrays in full. Strings are kept as bytes; the caller
// dumps with invalid UTF-8 replaced.
Json gguf_value_json(const GgufValue& v) {
  switch (v.elem_type()) {
    case GgufType::kU8: return numeric_json<uint8_t>(v);
    case GgufType::kI8: return numeric_json<int8_t>(v);
    case GgufType::kU16: return numeric_json<uint16_t>(v);
    case GgufType::kI16: return numeric_json<int16_t>(v);
    case GgufType::kU32: return numeric_json<uint32_t>(v);
    case GgufType::kI32: return numeric_json<int32_t>(v);
    case GgufType::kF32: return numeric_json<float>(v);
    case GgufType::kBool: return numeric_json<bool>(v);
    case GgufType::kU64: return numeric_json<uint64_t>(v);
    case GgufType::kI64: return numeric_json<int64_t>(v);
    case GgufType::kF64: return numeric_json<double>(v);
    case GgufType::kString: return v.is_array() ? Json(v.as_string_array()) : Json(v.as_string());
    case GgufType::kArray: break;  // the reader refuses nested arrays
  }
  fail("GGUF value of type ", v.type_str(), " has no JSON form");
}

// One line of the text listing: strings quoted and escaped, arrays cut after 8 elements.
std::string display_value(const Json& v) {
  constexpr size_t kMaxElems = 8, kMaxChars = 120;
  auto one = [&](const Json& e) {
    if (!e.is_string()) return e.dump();
    const std::string& s = e.get_ref<const std::string&>();
    return "\"" + escape_for_terminal(s.substr(0, kMaxChars)) + (s.size() > kMaxChars ? "\"..." : "\"");
  };
  if (!v.is_array()) return one(v);
  std::string out = "[";
  for (size_t i = 0; i < v.size() && i < kMaxElems; ++i) out += (i ? ", " : "") + one(v[i]);
  if (v.size() > kMaxElems) out += ", ... (" + std::to_string(v.size()) + " elements)";
  return out + "]";
}

Json tensors_json(const TensorSource& src, uint64_t& params, uint64_t& bytes) {
  Json arr = Json::array();
  params = bytes = 0;
  for (const auto& t : src.tensors()) {
    arr.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"bytes", t.nbytes}});
    params += t.numel();
    bytes += t.nbytes;
  }
  return arr;
}

Json config_summary(const ModelConfig& c) {
  return {{"arch", c.arch},          {"hf_architecture", c.hf_architecture},
          {"d_model", c.d_model},    {"n_layer", c.n_layer},
          {"n_vocab", c.n_vocab},    {"n_ctx_train", c.n_ctx_train},
          {"tied_embeddings", c.tied_embeddings}};
}

Json inspect_json(const std::string& path) {
  Json j;
  j["path"] = path;
  uint64_t params = 0, bytes = 0;
  switch (detect_model_format(path)) {
    case ModelFormat::kHfFolder: {
      j["format"] = "safetensors";
      auto st = SafetensorsModel::open(path);
      j["files"] = st->shard_files();
      j["metadata"] = st->metadata();
      j["tensors"] = tensors_json(*st, params, bytes);
      const std::string dir = st->root();
      if (file_exists(dir + "/config.json")) {
        try {
          j["model"] = config_summary(load_hf_description(dir).config);
        } catch (const Error& e) {
          j["model_error"] = e.what();
        }
      }
      break;
    }
    case ModelFormat::kGguf: {
      GgufFile g(path);
      j["format"] = "gguf";
      j["version"] = g.version();
      Json kv = Json::object();
      for (const auto& e : g.kvs()) {
        kv[e.key] = {{"type", e.value.type_str()}, {"value", gguf_value_json(e.value)}};
        if (e.key == "general.file_type") j["file_type"] = file_type_json(e.value);
      }
      j["metadata"] = kv;
      j["tensors"] = tensors_json(g, params, bytes);
      break;
    }
    case ModelFormat::kCheckpoint: {
      CheckpointReader ck(path);
      const auto& d = ck.description();
      j["format"] = "temper-checkpoint";
      j["format_version"] = ck.format_version();
      j["compressed"] = ck.compressed();
      j["model"] = config_summary(d.config);
      j["tokenizer"] = {{"kind", d.tokenizer.kind}, {"tokens", d.tokenizer.tokens.size()},
                        {"merges", d.tokenizer.merges.size()}, {"bos_id", d.tokenizer.bos_id},
                        {"eos_id", d.tokenizer.eos_id}};
      j["chat_template"] = !d.chat_template.empty();
      j["provenance"] = {{"source", d.provenance.source}, {"files", d.provenance.files},
                         {"config_sha256", d.provenance.config_sha256},
                         {"converter", d.provenance.converter}, {"created_utc", d.provenance.created_utc}};
      j["tensors"] = tensors_json(ck, params, bytes);
      break;
    }
  }
  j["parameters"] = params;
  j["tensor_bytes"] = bytes;
  j["bits_per_weight"] = bits_per_weight(bytes, params);
  return j;
}

// Dumps for the terminal: invalid UTF-8 replaced, then escaped.
std::string dump_for_terminal(const Json& v) {
  return escape_for_terminal(v.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string str(const Json& v) { return escape_for_terminal(v.get<std::string>()); }

void print_text(const Json& j) {
  std::printf("%s: %s\n", str(j["path"]).c_str(), str(j["format"]).c_str());
  if (j.contains("model")) {
    const auto& m = j["model"];
    std::printf("model: %s [%s], %d layers, d_model %d, vocab %d, context %d%s\n",
                str(m["hf_architecture"]).c_str(), str(m["arch"]).c_str(),
                m["n_layer"].get<int>(), m["d_model"].get<int>(), m["n_vocab"].get<int>(),
                m["n_ctx_train"].get<int>(), m["tied_embeddings"].get<bool>() ? ", tied embeddings" : "");
  }
  if (j["format"] == "gguf") {
    std::printf("GGUF v%d, %zu keys\n", j["version"].get<int>(), j["metadata"].size());
    if (j.contains("file_type") && j["file_type"].contains("name"))
      std::printf("file type: %s (llama.cpp: %s)\n", str(j["file_type"]["name"]).c_str(),
                  str(j["file_type"]["llama_cpp"]).c_str());
    for (const auto& [k, v] : j["metadata"].items()) {
      std::string value = display_value(v["value"]);
      if (k == "general.file_type" && j.contains("file_type") && j["file_type"].contains("name"))
        value += " (" + j["file_type"]["name"].get<std::string>() + ")";
      std::printf("  %-48s %-16s %s\n", escape_for_terminal(k).c_str(), str(v["type"]).c_str(), value.c_str());
    }
  }
  for (const char* key : {"format_version", "compressed", "files", "metadata", "tokenizer", "provenance", "model_error"})
    if (j.contains(key) && !j[key].empty() && !(j["format"] == "gguf" && std::string(key) == "metadata"))
      std::printf("%s: %s\n", key, dump_for_terminal(j[key]).c_str());
  std::printf("\n%-60s %-6s %-22s %12s\n", "tensor", "dtype", "shape", "bytes");
  for (const auto& t : j["tensors"]) {
    std::string shape = t["shape"].dump();
    std::printf("%-60s %-6s %-22s %12llu\n", str(t["name"]).c_str(), str(t["dtype"]).c_str(), shape.c_str(),
                (unsigned long long)t["bytes"].get<uint64_t>());
  }
  std::printf("\n%zu tensors, %llu parameters, %s, %.3f bits per weight (tensor bytes x 8 / parameters)\n",
              j["tensors"].size(), (unsigned long long)j["parameters"].get<uint64_t>(),
              human_bytes(double(j["tensor_bytes"].get<uint64_t>())).c_str(), j["bits_per_weight"].get<double>());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show what a safetensors file/folder, temper checkpoint or GGUF holds");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("file", *path, "File or folder to inspect")->required();
  cmd->add_flag("--json", *json, "Print JSON on stdout");
  cmd->callback([path, json] {
    Json j = inspect_json(*path);
    // Keys, tensor names and strings are bytes from the file: replace invalid UTF-8 (U+FFFD)
    // rather than fail.
    if (*json) std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    else print_text(j);
  });
}

}  // namespace temper
