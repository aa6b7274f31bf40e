// config.json (and its text_config) as convert reads it: load_hf_description() on a folder
// holding the input as config.json next to stories260K's tokenizer files; the architecture's
// parser and validate_config() run on whatever it accepts.
#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "fuzz_util.h"
#include "model/model_desc.h"

namespace {
const std::string& folder() {
  static const std::string dir = [] {
    const std::string d = temper::fuzz::scratch_dir() + "/hf";
    std::filesystem::create_directories(d);
    for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                          "special_tokens_map.json", "generation_config.json"})
      std::filesystem::copy_file(std::string(TEMPER_SOURCE_DIR) + "/sample/stories260K/" + f, d + "/" + f);
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = folder();
  temper::fuzz::write_input("hf/config.json", data, size);
  try {
    (void)temper::load_hf_description(dir);
  } catch (const temper::Error&) {
  }
  return 0;
}
