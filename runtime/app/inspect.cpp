// `temper inspect FILE`: what a safetensors file/folder, temper checkpoint or GGUF holds:
// tensors, dtypes, shapes, metadata, parameter count and bytes; --json for scripts.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "app/commands.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/model_desc.h"
#include "model/open_model.h"

namespace temper {
namespace {


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
      for (const auto& e : g.kvs()) kv[e.key] = {{"type", e.value.type_str()}, {"value", e.value.to_display(8)}};
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
  return j;
}

void print_text(const Json& j) {
  std::printf("%s: %s\n", j["path"].get<std::string>().c_str(), j["format"].get<std::string>().c_str());
  if (j.contains("model")) {
    const auto& m = j["model"];
    std::printf("model: %s [%s], %d layers, d_model %d, vocab %d, context %d%s\n",
                m["hf_architecture"].get<std::string>().c_str(), m["arch"].get<std::string>().c_str(),
                m["n_layer"].get<int>(), m["d_model"].get<int>(), m["n_vocab"].get<int>(),
                m["n_ctx_train"].get<int>(), m["tied_embeddings"].get<bool>() ? ", tied embeddings" : "");
  }
  if (j["format"] == "gguf") {
    std::printf("GGUF v%d, %zu keys\n", j["version"].get<int>(), j["metadata"].size());
    for (const auto& [k, v] : j["metadata"].items())
      std::printf("  %-48s %-16s %s\n", k.c_str(), v["type"].get<std::string>().c_str(), v["value"].get<std::string>().c_str());
  }
  for (const char* key : {"format_version", "compressed", "files", "metadata", "tokenizer", "provenance", "model_error"})
    if (j.contains(key) && !j[key].empty() && !(j["format"] == "gguf" && std::string(key) == "metadata")) std::printf("%s: %s\n", key, j[key].dump().c_str());
  std::printf("\n%-60s %-6s %-22s %12s\n", "tensor", "dtype", "shape", "bytes");
  for (const auto& t : j["tensors"]) {
    std::string shape = t["shape"].dump();
    std::printf("%-60s %-6s %-22s %12llu\n", t["name"].get<std::string>().c_str(),
                t["dtype"].get<std::string>().c_str(), shape.c_str(),
                (unsigned long long)t["bytes"].get<uint64_t>());
  }
  std::printf("\n%zu tensors, %llu parameters, %s\n", j["tensors"].size(),
              (unsigned long long)j["parameters"].get<uint64_t>(),
              human_bytes(double(j["tensor_bytes"].get<uint64_t>())).c_str());
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
    if (*json) std::printf("%s\n", j.dump(2).c_str());
    else print_text(j);
  });
}

}  // namespace temper
