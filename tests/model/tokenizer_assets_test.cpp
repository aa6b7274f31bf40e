// Tokenizer assets against the real fixtures: the SentencePiece reader against the .vocab text
// dump that SentencePiece's trainer wrote beside tok512.model, and tokenizer.json parsing against
// what Python's json module reads from the same files.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json.h"
#include "model/sentencepiece_model.h"
#include "model/tokenizer_assets.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::fixture;
using test::read_file;
using test::TempDir;
using test::write_file;

constexpr auto kNormal = int32_t(TokenType::kNormal), kUnknown = int32_t(TokenType::kUnknown),
               kControl = int32_t(TokenType::kControl), kUserDefined = int32_t(TokenType::kUserDefined),
               kByte = int32_t(TokenType::kByte);

struct VocabLine {
  std::string piece;
  float score;
};

// tok512.vocab: "piece\tscore" per line, written by spm_train next to tok512.model.
std::vector<VocabLine> read_vocab(const std::string& path) {
  std::ifstream f(path);
  std::vector<VocabLine> out;
  std::string line;
  while (std::getline(f, line)) {
    const size_t tab = line.rfind('\t');
    out.push_back({line.substr(0, tab), std::stof(line.substr(tab + 1))});
  }
  return out;
}

// The SentencePiece type spm gives each piece of a byte_fallback BPE model.
int32_t expected_sp_type(const std::string& piece) {
  if (piece == "<unk>") return kUnknown;
  if (piece == "<s>" || piece == "</s>") return kControl;
  if (piece.size() == 6 && piece.rfind("<0x", 0) == 0) return kByte;
  return kNormal;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SentencePieceModel, Stories260KMatchesVocabDump) {
  const std::string bytes = read_file(fixture("model/stories260K-hf-f32/tokenizer.model"));
  const SentencePieceModel m = parse_sentencepiece_model(bytes, "tokenizer.model");
  const auto vocab = read_vocab(fixture("model/source/tok512.vocab"));
  ASSERT_EQ(vocab.size(), 512u);
  ASSERT_EQ(m.pieces.size(), 512u);
  for (size_t i = 0; i < vocab.size(); ++i) {
    EXPECT_EQ(m.pieces[i].piece, vocab[i].piece) << i;
    EXPECT_EQ(m.pieces[i].score, vocab[i].score) << i;  // integers in both: exact
    EXPECT_EQ(m.pieces[i].type, expected_sp_type(vocab[i].piece)) << i;
  }
  EXPECT_EQ(m.pieces[3].piece, "<0x00>");
  EXPECT_EQ(m.pieces[258].piece, "<0xFF>");
  // The settings MANIFEST.md documents for this model (llama2.c train_vocab).
  EXPECT_EQ(m.model_type, 2);  // BPE
  EXPECT_EQ(m.vocab_size, 512);
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_EQ(m.unk_id, 0);
  EXPECT_EQ(m.bos_id, 1);
  EXPECT_EQ(m.eos_id, 2);
  EXPECT_EQ(m.pad_id, -1);
  EXPECT_EQ(m.normalizer_name, "identity");
  EXPECT_TRUE(m.add_dummy_prefix);
  EXPECT_TRUE(m.remove_extra_whitespaces);
}

TEST(SentencePieceModel, Llama2TokenizerModel) {
  const std::string bytes = read_file(fixture("tokenizers/llama2/tokenizer.model"));
  const SentencePieceModel m = parse_sentencepiece_model(bytes, "tokenizer.model");
  // Llama 2's published layout: 32000 pieces, <unk> <s> </s>, then the 256 byte pieces.
  ASSERT_EQ(m.pieces.size(), 32000u);
  EXPECT_EQ(m.pieces[0].piece, "<unk>");
  EXPECT_EQ(m.pieces[0].type, kUnknown);
  EXPECT_EQ(m.pieces[1].type, kControl);
  EXPECT_EQ(m.pieces[2].type, kControl);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    EXPECT_EQ(m.pieces[3 + b].piece, name);
    EXPECT_EQ(m.pieces[3 + b].type, kByte);
  }
  EXPECT_EQ(m.pieces[29871].piece, "\xE2\x96\x81");  // "▁", Llama 2's well-known space piece
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_EQ(m.model_type, 2);
  EXPECT_EQ(m.pad_id, -1);  // a 10-byte negative varint
}

TEST(SentencePieceModel, EveryTruncationIsRejectedOrShorter) {
  const std::string bytes = read_file(fixture("model/stories260K-hf-f32/tokenizer.model"));
  const SentencePieceModel full = parse_sentencepiece_model(bytes, "tokenizer.model");
  int errors = 0;
  for (size_t len = 1; len < bytes.size(); ++len) {
    try {
      // A cut at a top-level field boundary is a valid, shorter message: its pieces must be a
      // prefix of the full model's.
      const auto m = parse_sentencepiece_model(std::string_view(bytes).substr(0, len), "tokenizer.model");
      ASSERT_LE(m.pieces.size(), full.pieces.size());
      for (size_t i = 0; i < m.pieces.size(); ++i) {
        EXPECT_EQ(m.pieces[i].piece, full.pieces[i].piece);
        EXPECT_EQ(m.pieces[i].score, full.pieces[i].score);
        EXPECT_EQ(m.pieces[i].type, full.pieces[i].type);
      }
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos);
    }
  }
  EXPECT_GT(errors, int(bytes.size()) / 2);
  const std::string msg = error_of([&] { parse_sentencepiece_model(std::string_view(bytes).substr(0, 1000), "x/tokenizer.model"); });
  EXPECT_NE(msg.find("x/tokenizer.model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset"), std::string::npos) << msg;
}

TEST(TokenizerAssets, Stories260KFolder) {
  const std::string dir = fixture("model/stories260K-hf-f32");
  const TokenizerAssets t = load_tokenizer_assets(dir);
  EXPECT_EQ(t.kind, "sentencepiece");  // tokenizer.model wins over tokenizer.json
  EXPECT_EQ(t.gguf_model, "llama");
  EXPECT_EQ(t.gguf_pre, "default");
  const auto vocab = read_vocab(fixture("model/source/tok512.vocab"));
  ASSERT_EQ(t.tokens.size(), 512u);
  ASSERT_EQ(t.scores.size(), 512u);
  ASSERT_EQ(t.token_types.size(), 512u);
  for (size_t i = 0; i < vocab.size(); ++i) {
    EXPECT_EQ(t.tokens[i], vocab[i].piece);
    EXPECT_EQ(t.scores[i], i < 3 ? -1000.0f : vocab[i].score) << i;  // added_tokens_decoder: -1000
    EXPECT_EQ(t.token_types[i], i < 3 ? kControl : expected_sp_type(vocab[i].piece)) << i;
  }
  EXPECT_TRUE(t.merges.empty());
  EXPECT_EQ(t.unk_id, 0);
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.pad_id, -1);
  EXPECT_EQ(t.eog_ids, std::vector<int32_t>{2});
  EXPECT_TRUE(t.add_bos);
  EXPECT_FALSE(t.add_eos);
  EXPECT_TRUE(t.add_space_prefix);  // add_dummy_prefix
  EXPECT_EQ(t.tokenizer_model, read_file(dir + "/tokenizer.model"));
  EXPECT_EQ(t.tokenizer_json, read_file(dir + "/tokenizer.json"));
  EXPECT_EQ(t.tokenizer_config_json, read_file(dir + "/tokenizer_config.json"));
  EXPECT_EQ(t.special_tokens_map_json, read_file(dir + "/special_tokens_map.json"));
}

// What Python's json module reads from each fixture tokenizer (independent of our parser).
// ctest runs each test in its own process, so each asks only for the tokenizer it needs.
Json python_facts(const std::string& name) {
  {
    const std::string script = R"PY(
import json, sys
out = {}
for name in sys.argv[2:]:
    d = sys.argv[1] + '/' + name
    tj = json.load(open(d + '/tokenizer.json', encoding='utf-8'))
    tc = json.load(open(d + '/tokenizer_config.json', encoding='utf-8'))
    by_id = {i: t for t, i in tj['model']['vocab'].items()}
    for a in tj['added_tokens']:
        by_id[a['id']] = a['content']
    n = max(by_id) + 1
    def tok_id(key):
        v = tc.get(key)
        if isinstance(v, dict): v = v.get('content')
        if not isinstance(v, str): return -1
        return next((a['id'] for a in tj['added_tokens'] if a['content'] == v), -1)
    m = tj['model'].get('merges', [])
    m0 = m[0] if isinstance(m[0], str) else ' '.join(p.replace(' ', '\u0120') for p in m[0])
    text_id = {t: i for i, t in by_id.items()}
    out[name] = dict(n=n, first=by_id[0], last=by_id[n - 1], n_merges=len(m), merge0=m0,
                     merge_last=m[-1] if isinstance(m[-1], str) else ' '.join(m[-1]),
                     bos=tok_id('bos_token'), eos=tok_id('eos_token'), pad=tok_id('pad_token'),
                     unk=tok_id('unk_token'),
                     special=sorted(a['id'] for a in tj['added_tokens'] if a['special']),
                     eom=text_id.get('<|eom_id|>', -1), chat_template=tc.get('chat_template'))
json.dump(out, sys.stdout)
)PY";
    TempDir tmp;
    write_file(tmp / "facts.py", script);
    const auto r = test::run_shell(cat(TEMPER_PYTHON, " ", tmp / "facts.py", " ", fixture("tokenizers"), " ", name));
    if (r.exit_code != 0) throw std::runtime_error("python failed: " + r.err);
    return Json::parse(r.out)[name];
  }
}

void expect_matches_python(const TokenizerAssets& t, const Json& py) {
  ASSERT_EQ(t.tokens.size(), py["n"].get<size_t>());
  EXPECT_EQ(t.scores.size(), t.tokens.size());
  EXPECT_EQ(t.token_types.size(), t.tokens.size());
  EXPECT_EQ(t.tokens.front(), py["first"].get<std::string>());
  EXPECT_EQ(t.tokens.back(), py["last"].get<std::string>());
  EXPECT_EQ(t.bos_id, py["bos"].get<int>());
  EXPECT_EQ(t.eos_id, py["eos"].get<int>());
  EXPECT_EQ(t.pad_id, py["pad"].get<int>());
  EXPECT_EQ(t.unk_id, py["unk"].get<int>());
  EXPECT_EQ(t.eom_id, py["eom"].get<int>());
  for (int id : py["special"]) EXPECT_EQ(t.token_types[id], kControl) << id;
}

TokenizerAssets load_fixture(const std::string& name, std::string_view arch = {}) {
  return load_tokenizer_assets(fixture("tokenizers/" + name), arch);
}

TEST(TokenizerAssets, Llama3) {
  int32_t eos[2];
  for (int i = 0; i < 2; ++i) {
    const char* name = i == 0 ? "llama3" : "llama3_2";
    SCOPED_TRACE(name);
    const TokenizerAssets t = load_fixture(name);
    eos[i] = t.eos_id;
    const Json py = python_facts(name);
    expect_matches_python(t, py);
    EXPECT_EQ(t.kind, "bpe");
    EXPECT_EQ(t.gguf_model, "gpt2");
    EXPECT_EQ(t.gguf_pre, "llama-bpe");
    ASSERT_EQ(t.merges.size(), py["n_merges"].get<size_t>());
    EXPECT_EQ(t.merges.front(), py["merge0"].get<std::string>());
    EXPECT_EQ(t.merges.back(), py["merge_last"].get<std::string>());
    EXPECT_EQ(t.bos_id, 128000);
    EXPECT_EQ(t.eot_id, 128009);
    EXPECT_EQ(t.tokens[128009], "<|eot_id|>");
    EXPECT_EQ(t.token_types[0], kNormal);
    EXPECT_EQ(t.scores[0], 0.0f);
    EXPECT_TRUE(t.add_bos);  // llama-bpe default (3) / TemplateProcessing (3.2)
    EXPECT_FALSE(t.add_eos);
    EXPECT_FALSE(t.add_space_prefix);
    EXPECT_NE(std::find(t.eog_ids.begin(), t.eog_ids.end(), 128009), t.eog_ids.end());
    EXPECT_NE(std::find(t.eog_ids.begin(), t.eog_ids.end(), t.eos_id), t.eog_ids.end());
  }
  EXPECT_EQ(eos[0], 128001);  // <|end_of_text|>
  EXPECT_EQ(eos[1], 128009);  // the instruct config says <|eot_id|>
}

TEST(TokenizerAssets, Qwen3) {
  const TokenizerAssets t = load_fixture("qwen3");
  const Json py = python_facts("qwen3");
  expect_matches_python(t, py);
  EXPECT_EQ(t.gguf_model, "gpt2");
  EXPECT_EQ(t.gguf_pre, "qwen2");
  ASSERT_EQ(t.merges.size(), py["n_merges"].get<size_t>());
  EXPECT_EQ(t.merges.front(), py["merge0"].get<std::string>());
  EXPECT_EQ(t.eos_id, 151645);
  EXPECT_EQ(t.tokens[151645], "<|im_end|>");
  EXPECT_EQ(t.eot_id, 151645);
  EXPECT_EQ(t.bos_id, -1);
  EXPECT_FALSE(t.add_bos);  // add_bos_token: false
  // <think> is added but not special and not <|...|>: USER_DEFINED, as llama.cpp writes it.
  const auto think = std::find(t.tokens.begin(), t.tokens.end(), "<think>") - t.tokens.begin();
  ASSERT_LT(size_t(think), t.tokens.size());
  EXPECT_EQ(t.token_types[think], kUserDefined);
}

TEST(TokenizerAssets, Gemma3TokenizerJson) {
  const TokenizerAssets t = load_fixture("gemma3", "gemma3");
  const Json py = python_facts("gemma3");
  expect_matches_python(t, py);
  EXPECT_EQ(t.kind, "bpe");
  EXPECT_EQ(t.gguf_model, "llama");  // byte_fallback BPE: LlamaHfVocab
  EXPECT_EQ(t.gguf_pre, "default");
  EXPECT_TRUE(t.merges.empty());     // llama.cpp writes none for this path
  EXPECT_EQ(t.bos_id, 2);
  EXPECT_EQ(t.tokens[1], "<eos>");
  EXPECT_EQ(t.eos_id, 106);  // this tokenizer_config.json names <end_of_turn> as eos_token
  EXPECT_EQ(t.eot_id, 106);
  EXPECT_EQ(t.tokens[106], "<end_of_turn>");
  EXPECT_EQ(t.pad_id, 0);
  EXPECT_EQ(t.unk_id, 3);
  EXPECT_EQ(t.token_types[238], kByte);  // <0x00>
  EXPECT_EQ(t.tokens[238], "<0x00>");
  EXPECT_EQ(t.token_types[6], kControl);  // <unused0> looks special
  EXPECT_EQ(t.token_types[107], kUserDefined);  // "\n": added, not special
  EXPECT_EQ(t.scores[500], -1000.0f);
  EXPECT_TRUE(t.add_bos);
  EXPECT_FALSE(t.add_space_prefix);
}

TEST(TokenizerAssets, Gemma3ParsesQuickly) {
  // CPU time, not wall time: the test machine is shared. ~1.5 s in Release here.
  const std::clock_t c0 = std::clock();
  load_fixture("gemma3");
  const double s = double(std::clock() - c0) / CLOCKS_PER_SEC;
  EXPECT_LT(s, 4.0) << "33 MB tokenizer.json took " << s << " s of CPU";
}


// --- hand-made folders: paths the fixtures do not cover, and bad input

Json tiny_bpe(bool byte_fallback) {
  Json vocab = {{"<pad>", 0}, {"<eos>", 1}, {"<bos>", 2}, {"<unk>", 3}, {"<0x00>", 4}, {"<|channel>", 5},
                {"<turn|>", 6}, {"a", 7}, {"b", 8}, {"ab", 9}};
  Json added = Json::array();
  for (auto [id, text] : std::initializer_list<std::pair<int, const char*>>{
           {0, "<pad>"}, {1, "<eos>"}, {2, "<bos>"}, {3, "<unk>"}, {5, "<|channel>"}, {6, "<turn|>"}})
    added.push_back({{"id", id}, {"content", text}, {"special", true}});
  return {{"added_tokens", added},
          {"model", {{"type", "BPE"}, {"byte_fallback", byte_fallback}, {"vocab", vocab},
                     {"merges", Json::array({Json::array({"a", "b"})})}}}};
}

TEST(TokenizerAssets, Gemma4PerArchitecture) {
  TempDir d;
  write_file(d / "tokenizer.json", tiny_bpe(true).dump());
  write_file(d / "tokenizer_config.json", R"({"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": false})");
  write_file(d / "config.json", R"({"text_config": {"eos_token_id": [1, 6]}})");
  const TokenizerAssets g = load_tokenizer_assets(d.path(), "gemma4");
  EXPECT_EQ(g.gguf_model, "gemma4");
  EXPECT_EQ(g.gguf_pre, "");
  EXPECT_EQ(g.token_types[5], kUserDefined);  // <|channel> is forced visible
  EXPECT_EQ(g.token_types[6], kControl);
  EXPECT_EQ(g.token_types[4], kByte);
  EXPECT_EQ(g.token_types[7], kNormal);
  EXPECT_EQ(g.scores[7], -1000.0f);
  EXPECT_EQ(g.merges, std::vector<std::string>{"a b"});
  EXPECT_EQ(g.bos_id, 2);
  EXPECT_EQ(g.eos_id, 1);
  EXPECT_EQ(g.eot_id, 6);  // <turn|>
  EXPECT_EQ(g.eog_ids, (std::vector<int32_t>{1, 6}));
  EXPECT_TRUE(g.add_bos);  // the converter forces it
  EXPECT_FALSE(g.add_space_prefix);

  const TokenizerAssets l = load_tokenizer_assets(d.path());  // same files, no arch: LlamaHfVocab
  EXPECT_EQ(l.gguf_model, "llama");
  EXPECT_EQ(l.token_types[5], kControl);
  EXPECT_TRUE(l.merges.empty());
  EXPECT_FALSE(l.add_bos);  // add_bos_token: false

  fs::remove(d / "tokenizer.json");
  fs::copy_file(fixture("model/stories260K-hf-f32/tokenizer.model"), d / "tokenizer.model");
  const std::string e = error_of([&] { load_tokenizer_assets(d.path(), "gemma4"); });
  EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
}

TEST(TokenizerAssets, ByteLevelBpeDetails) {
  TempDir d;
  Json tj = tiny_bpe(false);
  tj["model"]["merges"] = Json::array({Json::array({"a b", "c"}), Json::array({"a", "b"})});
  write_file(d / "tokenizer.json", tj.dump());  // no pre_tokenizer: empty hash -> "default"
  write_file(d / "config.json", R"({"vocab_size": 12, "eos_token_id": 1})");
  write_file(d / "generation_config.json", R"({"eos_token_id": [1, 6]})");
  const TokenizerAssets t = load_tokenizer_assets(d.path());
  EXPECT_EQ(t.gguf_model, "gpt2");
  EXPECT_EQ(t.gguf_pre, "default");
  EXPECT_EQ(t.merges, (std::vector<std::string>{"a\xC4\xA0" "b c", "a b"}));  // inner space -> U+0120
  ASSERT_EQ(t.tokens.size(), 12u);  // padded to config.json vocab_size
  EXPECT_EQ(t.tokens[10], "[PAD10]");
  EXPECT_EQ(t.token_types[10], int32_t(TokenType::kUnused));
  EXPECT_EQ(t.token_types[4], kNormal);  // no byte_fallback: <0x00> is an ordinary token
  EXPECT_EQ(t.eos_id, 1);                // no tokenizer_config.json: config.json
  EXPECT_EQ(t.eog_ids, (std::vector<int32_t>{1, 6}));

  tj["pre_tokenizer"] = {{"type", "Sequence"},
                         {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "X"}}}}}}};
  write_file(d / "tokenizer.json", tj.dump());
  const auto hash = test::run_shell("printf X | sha256sum");
  const std::string e = error_of([&] { load_tokenizer_assets(d.path()); });
  EXPECT_NE(e.find(d / "tokenizer.json"), std::string::npos) << e;
  EXPECT_NE(e.find(hash.out.substr(0, 64)), std::string::npos) << e;

  write_file(d / "config.json", R"({"vocab_size": 5})");
  tj.erase("pre_tokenizer");
  write_file(d / "tokenizer.json", tj.dump());
  EXPECT_NE(error_of([&] { load_tokenizer_assets(d.path()); }).find("vocab_size"), std::string::npos);
}

TEST(TokenizerAssets, SentencePiecePaddedToConfigVocab) {
  TempDir d;
  fs::copy_file(fixture("model/stories260K-hf-f32/tokenizer.model"), d / "tokenizer.model");
  write_file(d / "config.json", R"({"vocab_size": 520})");
  const TokenizerAssets t = load_tokenizer_assets(d.path(), "gemma3");
  ASSERT_EQ(t.tokens.size(), 520u);
  EXPECT_EQ(t.tokens[515], "[PAD515]");
  EXPECT_EQ(t.scores[515], -10000.0f);
  EXPECT_EQ(t.token_types[515], int32_t(TokenType::kUnused));
  EXPECT_EQ(t.bos_id, 1);  // no tokenizer_config.json or ids in config.json: the proto's own
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.unk_id, 0);
  EXPECT_FALSE(t.add_space_prefix);  // Gemma
  EXPECT_TRUE(t.tokenizer_json.empty());
}

TEST(TokenizerAssets, BadInputNamesTheFile) {
  TempDir d;
  EXPECT_NE(error_of([&] { load_tokenizer_assets(d.path()); }).find("tokenizer"), std::string::npos);

  write_file(d / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  std::string e = error_of([&] { load_tokenizer_assets(d.path()); });
  EXPECT_NE(e.find(d / "tokenizer.json"), std::string::npos) << e;

  write_file(d / "tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  e = error_of([&] { load_tokenizer_assets(d.path()); });
  EXPECT_NE(e.find("Unigram"), std::string::npos) << e;

  write_file(d / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})");
  e = error_of([&] { load_tokenizer_assets(d.path()); });
  EXPECT_NE(e.find("model.vocab"), std::string::npos) << e;

  const std::string model = read_file(fixture("model/stories260K-hf-f32/tokenizer.model"));
  write_file(d / "tokenizer.model", model.substr(0, model.size() / 2));
  e = error_of([&] { load_tokenizer_assets(d.path()); });
  EXPECT_NE(e.find(d / "tokenizer.model"), std::string::npos) << e;
  EXPECT_NE(e.find("offset"), std::string::npos) << e;
}

}  // namespace
}  // namespace temper
