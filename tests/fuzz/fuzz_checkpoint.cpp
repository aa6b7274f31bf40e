// A temper checkpoint (.h5) as eval/compare/generate/quantize/inspect open it: open_model()
// (HDF5 file, format version, config, tokenizer assets, chat template, provenance, tensor
// table), every tensor's bytes, the tokenizer built from the stored assets, the chat template.
// HDF5 itself is not hardened against crafted files; findings inside libhdf5 are reported, not
// fixed here (see README "Fuzzing").
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "model/open_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temper::fuzz::write_input("model.h5", data, size);
  try {
    auto m = temper::open_model(path);
    std::vector<uint8_t> scratch;
    uint64_t touched = 0;
    for (const auto& t : m.tensors->tensors()) {
      auto bytes = m.tensors->read(t, scratch);
      if (!bytes.empty()) touched += bytes.front() + bytes.back();
    }
    (void)touched;
    auto tok = temper::Tokenizer::from_assets(m.desc.tokenizer);
    (void)tok.decode(tok.encode("Once upon a time, 42 caf\xc3\xa9!", true, true));
    if (!m.desc.chat_template.empty()) {
      const temper::ChatMessage msgs[] = {{"user", "Hi"}};
      (void)temper::render_chat(m.desc.chat_template, msgs, {.date = "01 Jan 2025"});
    }
  } catch (const temper::Error&) {
  }
  return 0;
}
