// The HF-folder path and the GGUF path must tokenize rendered chat prompts identically: temper's
// tokenizer on the folder (HF semantics of tokenizer.json / tokenizer.model, the path .h5
// checkpoints take; checked against @lenml/tokenizers in tokenizer_test) against llama.cpp
// (node-llama-cpp) and temper's own GGUF tokenizer on the GGUF `temper quantize` writes from
// that folder. A special token written as text (<start_of_turn>, <|im_start|>, ...) must stay
// one id on every path: an added token HF marks special has to be CONTROL in the GGUF.
// Every tokenizer in the fixtures: tokenizer.json only (gemma3, llama3, llama3_2, qwen3),
// tokenizer.model only (llama2), both (stories260K). gemma4 ships only a chat template.
#include <gtest/gtest.h>

#include <map>

#include "core/file.h"
#include "core/json.h"
#include "model/gguf_model.h"
#include "model/model_desc.h"
#include "quantize/llama_ref_util.h"
#include "tokenizer/tokenizer.h"

namespace temper {
namespace {
using namespace test;

struct Case {
  std::string name, folder, gguf;
  std::vector<std::string> prompts;
};

// Llama 2 chat and plain SentencePiece prompts (no rendering of their templates in the fixtures).
const std::vector<std::string> kLlama2Prompts = {
    "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nWhat is 2+2? [/INST]",
    "<s>[INST] What is 2+2? [/INST] 2+2 equals 4. </s><s>[INST] And 3+3? [/INST]",
};

struct World {
  TempDir dir;
  std::vector<Case> cases;
  std::map<std::string, std::vector<std::vector<int32_t>>> llama;  // case -> ids per prompt
  World() {
    const Json renderings = parse_json(read_text_file(fixture("tokenizers/chat_template_renderings.json")), "renderings");
    for (auto [tok, arch] : {std::pair{"gemma3", "gemma3"}, {"llama3", "llama"}, {"llama3_2", "llama"}, {"qwen3", "qwen3"},
                             {"llama2", "llama"}}) {
      Case c{tok, dir / tok, dir / (std::string(tok) + ".gguf"), {}};
      if (renderings["renderings"].contains(tok))
        for (const auto& [key, text] : renderings["renderings"][tok].items()) c.prompts.push_back(text.get<std::string>());
      else
        c.prompts = kLlama2Prompts;
      auto r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/tests/runtime_gguf/make_vocab_model.py " +
                         fixture(std::string("tokenizers/") + tok) + " " + arch + " " + c.folder);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      cases.push_back(c);
    }
    cases.push_back({"stories260K", fixture("model/stories260K-hf-f32"), dir / "stories.gguf",
                     {"<s>Once upon a time</s><s>Lily", "<unk> There was a ball.</s>"}});
    Json jobs = Json::array();
    for (const Case& c : cases) {
      temper_ok("quantize " + c.folder + " -t F16 -o " + c.gguf);
      jobs.push_back({{"cmd", "tokenize"}, {"model", c.gguf}, {"strings", c.prompts}, {"out", c.gguf + ".ids.json"}});
    }
    write_file(dir / "jobs.json", jobs.dump());
    auto r = run_shell("TEMPER_LLAMA_REF_DIR=" + llama_ref_dir() + " node " + source_dir() +
                       "/tests/runtime_gguf/llama_batch.mjs " + (dir / "jobs.json"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const Case& c : cases)
      llama[c.name] = Json::parse(read_file(c.gguf + ".ids.json")).get<std::vector<std::vector<int32_t>>>();
  }
};

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += cat(s.empty() ? "" : " ", id);
  return s;
}

TEST(GgufChatTokenize, FolderAndGgufPathsAgreeOnRenderedPrompts) {
  const World w;
  for (const Case& c : w.cases) {
    SCOPED_TRACE(c.name);
    const Tokenizer hf = Tokenizer::from_assets(load_hf_description(c.folder).tokenizer);
    const GgufFile f(c.gguf);
    const Tokenizer gguf = Tokenizer::from_assets(load_gguf_tokenizer_assets(f), TokenizerSource::kGguf);
    const auto& llama = w.llama.at(c.name);
    ASSERT_EQ(llama.size(), c.prompts.size());
    ASSERT_FALSE(c.prompts.empty());
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      const auto want = hf.encode(c.prompts[i], /*add_special=*/false, /*parse_special=*/true);
      const auto ours = gguf.encode(c.prompts[i], false, true);
      EXPECT_EQ(llama[i], want) << "prompt " << i << " \"" << c.prompts[i] << "\"\n  folder:      " << ids_text(want)
                                << "\n  llama.cpp:   " << ids_text(llama[i]);
      EXPECT_EQ(ours, want) << "prompt " << i << " \"" << c.prompts[i] << "\"\n  folder:      " << ids_text(want)
                            << "\n  temper gguf: " << ids_text(ours);
    }
    std::printf("%-12s %zu rendered prompts compared\n", c.name.c_str(), c.prompts.size());
  }
}

}  // namespace
}  // namespace temper
