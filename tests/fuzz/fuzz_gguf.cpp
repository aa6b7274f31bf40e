// A GGUF file as inspect, eval/compare/generate and quantize (--allow-requantize) open it: the
// header, every KV shown as `inspect --json` shows it, every tensor's bytes, the model
// description and llama.cpp-style tokenizer built from its metadata, and the chat template.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "formats/gguf.h"
#include "fuzz_util.h"
#include "model/gguf_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temper::fuzz::write_input("model.gguf", data, size);
  try {
    temper::GgufFile g(path);
    temper::Json kv = temper::Json::object();
    for (const auto& e : g.kvs()) kv[e.key] = {{"type", e.value.type_str()}, {"value", e.value.to_display(8)}};
    temper::Json names = temper::Json::array();
    std::vector<uint8_t> scratch;
    uint64_t touched = 0;
    for (const auto& t : g.tensors()) {
      names.push_back(t.name);
      auto bytes = g.read(t, scratch);
      if (!bytes.empty()) touched += bytes.front() + bytes.back();
    }
    (void)touched;
    // What inspect --json prints, with its handling of invalid UTF-8 in keys and strings.
    (void)temper::Json{{"metadata", kv}, {"tensors", names}}.dump(2, ' ', false, temper::Json::error_handler_t::replace);

    const auto desc = temper::load_gguf_description(g);
    auto tok = temper::Tokenizer::from_assets(desc.tokenizer, temper::TokenizerSource::kGguf);
    const auto ids = tok.encode("Once upon a time, 42 <s> caf\xc3\xa9!", true, true);
    (void)tok.decode(ids);
    if (!desc.chat_template.empty()) {
      const temper::ChatMessage msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
      (void)temper::render_chat(desc.chat_template, msgs, {.date = "01 Jan 2025"});
    }
  } catch (const temper::Error&) {
  }
  return 0;
}
