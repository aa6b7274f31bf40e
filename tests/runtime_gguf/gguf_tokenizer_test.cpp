// temper's tokenizer built from a GGUF's tokenizer.ggml.* (TokenizerSource::kGguf) against
// llama.cpp's tokenizer on the same GGUF, on a broad corpus, for the SentencePiece-style
// stories260K vocabulary and real llama3 (gpt2 + llama-bpe), qwen3 (gpt2 + qwen2) and gemma3
// ("llama" model from tokenizer.json, scores -1000) vocabularies in tiny models.
#include <gtest/gtest.h>

#include <map>

#include "core/json.h"
#include "model/gguf_model.h"
#include "quantize/llama_ref_util.h"
#include "tokenizer/tokenizer.h"

namespace temper {
namespace {
using namespace test;

std::vector<std::string> corpus() {
  std::vector<std::string> c = {
      "Hello world",
      "Once upon a time, there was a little girl named Lily. She loved to play outside.",
      " leading space",
      "  two leading spaces",
      "trailing space ",
      "multiple   spaces    inside",
      "tabs\tand\t\ttabs",
      "new\nline\n\ndouble\n\n\ntriple",
      "\n\n\n",
      "   \n  \t \r\n mixed whitespace",
      "Ich möchte gerne ein Stück Käse. Größe: überdurchschnittlich. Straße",
      "مرحبا بالعالم، كيف حالك اليوم؟",
      "Tiếng Việt có dấu: Xin chào, tôi tên là Nguyễn.",
      "你好，世界！今天天气很好。我们去公园吧。",
      "日本語のテキストとカタカナ、ひらがな。",
      "한국어 문장입니다.",
      "Emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 ❤️ 🇩🇪",
      "int main() {\n    std::vector<int> v{1, 2, 3};\n    return v[0] + 0x1F;\n}",
      "def f(x):\n\treturn x ** 2  # square\n",
      "numbers 1234567890 3.14159 1,000,000 2024-05-01",
      "CAPS and MiXeD CaSe, don't won't I'm you'll they've",
      "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
      std::string(300, 'a'),
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
      "https://example.com/path?query=1&b=2#frag user@example.org",
      "<s>special</s> inside text",
      "<|begin_of_text|>Hi<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello",
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
      "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
      "<bos><eos><pad><unk>",
      "text<|endoftext|>more",
      "punctuation!!! ??? ... --- ''' \"\"\" ((()))",
      "ñ é ü ß ø å æ œ ç",
      "\xe2\x80\x8b zero width \xe2\x80\x8c joiners",
      "",
      " ",
      "a",
      "Ünïcödé façade naïve coöperate",
  };
  return c;
}

struct Case {
  std::string name, gguf;
};

struct World {
  TempDir dir;
  std::vector<Case> cases;
  std::map<std::string, std::vector<std::vector<int32_t>>> ref;  // gguf -> ids per string
  World() {
    cases.push_back({"stories260K", dir / "stories.gguf"});
    temper_ok("quantize " + fixture("model/stories260K-hf-f32") + " -t F32 -o " + cases.back().gguf);
    for (auto [tok, arch] : {std::pair{"llama3", "llama"}, {"qwen3", "qwen3"}, {"gemma3", "gemma3"}}) {
      const std::string folder = dir / tok;
      auto r = run_shell(std::string(TEMPER_PYTHON) + " " + source_dir() + "/tests/runtime_gguf/make_vocab_model.py " +
                         fixture(std::string("tokenizers/") + tok) + " " + arch + " " + folder);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      cases.push_back({tok, dir / (std::string(tok) + ".gguf")});
      temper_ok("quantize " + folder + " -t F16 -o " + cases.back().gguf);
    }
    Json jobs = Json::array();
    for (const Case& c : cases)
      jobs.push_back({{"cmd", "tokenize"}, {"model", c.gguf}, {"strings", corpus()}, {"out", c.gguf + ".ids.json"}});
    write_file(dir / "jobs.json", jobs.dump());
    auto r = run_shell("TEMPER_LLAMA_REF_DIR=" + llama_ref_dir() + " node " + source_dir() +
                       "/tests/runtime_gguf/llama_batch.mjs " + (dir / "jobs.json"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const Case& c : cases)
      ref[c.gguf] = Json::parse(read_file(c.gguf + ".ids.json")).get<std::vector<std::vector<int32_t>>>();
  }
};
std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += cat(s.empty() ? "" : " ", id);
  return s;
}

// node-llama-cpp's model.tokenize(text, true): special tokens parsed, no BOS/EOS added. One
// test for all vocabularies (ctest runs each test in its own process; the GGUFs are made once).
TEST(GgufTokenizer, MatchesLlamaCpp) {
  const World w;
  const auto texts = corpus();
  for (const Case& c : w.cases) {
    SCOPED_TRACE(c.name);
    const GgufFile f(c.gguf);
    const Tokenizer tok = Tokenizer::from_assets(load_gguf_tokenizer_assets(f), TokenizerSource::kGguf);
    const auto& ref = w.ref.at(c.gguf);
    ASSERT_EQ(ref.size(), texts.size());
    size_t same = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto got = tok.encode(texts[i], /*add_special=*/false, /*parse_special=*/true);
      if (got == ref[i]) {
        ++same;
        continue;
      }
      ADD_FAILURE() << "string " << i << " \"" << texts[i] << "\"\n  temper:    " << ids_text(got)
                    << "\n  llama.cpp: " << ids_text(ref[i]);
    }
    std::printf("%-12s %zu / %zu strings tokenized as llama.cpp does\n", c.name.c_str(), same, texts.size());
  }
}

}  // namespace
}  // namespace temper
