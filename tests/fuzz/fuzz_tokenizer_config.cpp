// tokenizer_config.json as convert and the runtime read it: special-token flags, added tokens,
// and the chat template (string or list form) rendered for a short conversation, on a folder
// holding the input next to stories260K's tokenizer.json and config.json.
#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "fuzz_util.h"
#include "model/model_desc.h"
#include "model/tokenizer_assets.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {
const std::string& folder() {
  static const std::string dir = [] {
    const std::string d = temper::fuzz::scratch_dir() + "/hf";
    std::filesystem::create_directories(d);
    for (const char* f : {"config.json", "tokenizer.json", "special_tokens_map.json"})
      std::filesystem::copy_file(std::string(TEMPER_SOURCE_DIR) + "/sample/stories260K/" + f, d + "/" + f);
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = folder();
  temper::fuzz::write_input("hf/tokenizer_config.json", data, size);
  try {
    const auto assets = temper::load_tokenizer_assets(dir, "llama");
    auto tok = temper::Tokenizer::from_assets(assets);
    (void)tok.decode(tok.encode("Hi <s> there</s>", true, true));
    const std::string tmpl = temper::load_chat_template(dir);
    if (!tmpl.empty()) {
      const temper::ChatMessage msgs[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
      (void)temper::render_chat(tmpl, msgs, {.date = "01 Jan 2025"});
    }
  } catch (const temper::Error&) {
  }
  return 0;
}
