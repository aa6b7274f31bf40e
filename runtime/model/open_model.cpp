#include "model/open_model.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/gguf_model.h"

namespace temper {
namespace fs = std::filesystem;

ModelFormat detect_model_format(const std::string& path) {
  if (is_directory(path)) return ModelFormat::kHfFolder;
  MappedFile f(path);
  static const uint8_t kHdf5[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (f.size() >= 8 && std::memcmp(f.data(), kHdf5, 8) == 0) return ModelFormat::kCheckpoint;
  if (f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0) return ModelFormat::kGguf;
  if (path.ends_with(".safetensors")) return ModelFormat::kHfFolder;
  fail(path, ": not a Hugging Face folder, .safetensors file, temper checkpoint (.h5) or GGUF file");
}

std::string OpenedModel::source_name(const std::string& canonical) const {
  for (const auto& [c, stored] : renames_)
    if (c == canonical) return stored;
  return canonical;
}

OpenedModel open_model(const std::string& path) {
  OpenedModel m;
  m.format = detect_model_format(path);
  switch (m.format) {
    case ModelFormat::kHfFolder: {
      const std::string dir = is_directory(path) ? path : fs::path(path).parent_path().string();
      auto st = SafetensorsModel::open(path);
      m.desc = load_hf_description(dir.empty() ? "." : dir, st->tensors());  // + validate_model
      for (const auto& t : st->tensors()) {
        auto canon = m.desc.arch->canonical_name(t.name);
        if (canon && *canon != t.name) m.renames_.emplace_back(*canon, t.name);
      }
      for (const auto& e : fs::directory_iterator(st->root())) m.files.push_back(e.path().string());
      m.tensors = std::move(st);
      break;
    }
    case ModelFormat::kCheckpoint: {
      auto ck = std::make_unique<CheckpointReader>(path);
      m.desc = ck->description();
      m.tensors = std::move(ck);
      m.files.push_back(path);
      break;
    }
    case ModelFormat::kGguf: {
      auto gguf = std::make_unique<GgufFile>(path);
      m.desc = load_gguf_description(*gguf);
      m.tensors = std::move(gguf);
      m.files.push_back(path);
      m.gguf_tensor_names = true;
      m.embed_scale_in_weight_dtype = false;
      break;
    }
  }
  return m;
}

}  // namespace temper
