// tokenizer.json as convert and the runtime read it: load_tokenizer_assets() on a folder
// holding the input as tokenizer.json (no tokenizer.model, so it is the one used), then the
// Hugging Face tokenizer built from it, encoding and decoding a short text.
#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "fuzz_util.h"
#include "model/tokenizer_assets.h"
#include "tokenizer/tokenizer.h"

namespace {
const std::string& folder() {
  static const std::string dir = [] {
    const std::string d = temper::fuzz::scratch_dir() + "/hf";
    std::filesystem::create_directories(d);
    for (const char* f : {"config.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
      std::filesystem::copy_file(std::string(TEMPER_SOURCE_DIR) + "/sample/stories260K/" + f, d + "/" + f);
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = folder();
  temper::fuzz::write_input("hf/tokenizer.json", data, size);
  try {
    const auto assets = temper::load_tokenizer_assets(dir, "llama");
    for (auto src : {temper::TokenizerSource::kHfJson, temper::TokenizerSource::kGguf}) {
      auto tok = temper::Tokenizer::from_assets(assets, src);
      const auto ids = tok.encode("Once upon a time,  42 <s> caf\xc3\xa9 \xf0\x9f\x98\x80!\n", true, true);
      (void)tok.decode(ids);
    }
  } catch (const temper::Error&) {
  }
  return 0;
}
