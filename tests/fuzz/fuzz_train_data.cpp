// Training JSONL as `temper train --data` reads it (train/data.h): every record shape, rendered
// without a template on stories260K's tokenizer (BOS/EOS framing) and with Qwen 3's chat
// template on Qwen 3's tokenizer (prompt masking through rendered prefixes, end-of-turn checks),
// each at a short --seq so truncation and the empty-mask paths are reached.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/file.h"
#include "fuzz_util.h"
#include "model/tokenizer_assets.h"
#include "train/data.h"

namespace {

struct Setup {
  temper::Tokenizer tok;
  temper::train::ChatDataOptions opt;
};

std::vector<Setup> setups() {
  std::vector<Setup> out;
  const std::string sample = std::string(TEMPER_SOURCE_DIR) + "/sample/stories260K";
  out.push_back({temper::Tokenizer::from_assets(temper::load_tokenizer_assets(sample)), {.seq = 48}});
  // Qwen 3 from the shared fixtures (scripts/fuzz.sh exports TEMPER_FIXTURES); without them only
  // the template-less path is fuzzed.
  const char* env = std::getenv("TEMPER_FIXTURES");
  const std::string qwen =
      (env ? std::string(env) : std::string(TEMPER_SOURCE_DIR) + "/../shared/fixtures") + "/tokenizers/qwen3";
  if (std::filesystem::exists(qwen + "/chat_template.jinja")) {
    temper::train::ChatDataOptions o{.seq = 40};
    o.chat_template = temper::read_text_file(qwen + "/chat_template.jinja");
    out.push_back({temper::Tokenizer::from_assets(temper::load_tokenizer_assets(qwen)), o});
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Setup> all = setups();
  const std::string path = temper::fuzz::write_input("data.jsonl", data, size);
  for (const Setup& s : all) {
    for (const auto train_on : {temper::train::TrainOn::kCompletion, temper::train::TrainOn::kAll}) {
      temper::train::ChatDataOptions o = s.opt;
      o.train_on = train_on;
      o.drop_long = size % 2 == 1;
      try {
        temper::train::ChatDataStats stats;
        for (const auto& ex : temper::train::read_examples(path, s.tok, o, stats))
          if (ex.tokens.size() != ex.trained.size() || ex.tokens.size() > size_t(o.seq)) __builtin_trap();
      } catch (const temper::Error&) {
      }
    }
  }
  return 0;
}
