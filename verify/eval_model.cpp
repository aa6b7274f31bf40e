// Opening a model for eval/compare/generate, from any format open_model() accepts.
#include "eval_model.h"

#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "formats/lora_adapter.h"
#include "forward/lora_apply.h"

namespace temper::verify {
namespace fs = std::filesystem;
namespace {

uint64_t weight_file_bytes(const std::string& path) {
  if (!fs::is_directory(path)) return fs::file_size(path);
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") total += e.file_size();
  return total;
}

forward::LoadOptions load_options_for(const OpenedModel& m) {
  forward::LoadOptions o;
  o.gguf_names = m.gguf_tensor_names;
  o.embed_scale_in_weight_dtype = m.embed_scale_in_weight_dtype;
  return o;
}

}  // namespace

std::unique_ptr<EvalModel> load_eval_model(const std::string& path, bool with_weights,
                                           const std::vector<std::string>& loras) {
  auto m = std::make_unique<EvalModel>();
  m->path = path;
  m->label = path;
  try {
    if (!fs::exists(path)) fail("no such file or folder");
    m->opened = open_model(path);
    if (with_weights) m->model = forward::Model::load(*m->opened.tensors, m->opened.desc, load_options_for(m->opened));
    if (with_weights && !loras.empty()) {
      std::vector<LoraAdapter> adapters;
      std::vector<forward::LoraBinding> bindings;
      adapters.reserve(loras.size());
      for (const std::string& spec : loras) {
        const LoraSpec s = parse_lora_spec(spec);
        adapters.push_back(read_lora_adapter(s.path));
        bindings.push_back({s.path, s.multiplier, &adapters.back()});
        m->label += " + lora " + spec;
      }
      m->model->set_lora(forward::LoraSet::bind(m->opened.desc, m->opened.gguf_tensor_names, bindings));
    }
    const TokenizerSource src =
        m->opened.format == ModelFormat::kGguf ? TokenizerSource::kGguf : TokenizerSource::kAuto;
    m->tok = std::make_unique<Tokenizer>(Tokenizer::from_assets(m->opened.desc.tokenizer, src));
    m->file_bytes = weight_file_bytes(path);
    const TensorTotals totals = tensor_totals(*m->opened.tensors);
    m->n_params = totals.n_params;
    m->tensor_bytes = totals.bytes;
  } catch (const Error& e) {
    fail("cannot load model ", path, ": ", e.what());
  } catch (const fs::filesystem_error& e) {
    fail("cannot load model ", path, ": ", e.what());
  }
  return m;
}

std::vector<int32_t> tokenize_text_file(const Tokenizer& tok, const std::string& path) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), "text file ", path, ": no such file");
  const std::string text = read_text_file(path);
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, /*parse_special=*/false);
  TEMPER_CHECK(ids.size() >= 2, "text file ", path, ": only ", ids.size(), " tokens; need at least 2");
  return ids;
}

}  // namespace temper::verify
