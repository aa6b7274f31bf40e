// ModelDescription from real and hand-made Hugging Face folders: config.json flattening and
// errors, provenance hash (checked with coreutils sha256sum), generation config, chat template
// precedence.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "model/model_desc.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::fixture;
using test::read_file;
using test::TempDir;
using test::write_file;

const std::string kStories = fixture("model/stories260K-hf-f32");

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// A copy of the stories260K folder without its tensors, for edits.
void copy_stories_meta(const TempDir& d) {
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.model", "tokenizer.json",
                        "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(kStories + "/" + f, d / f);
}

TEST(ModelDesc, Stories260K) {
  const ModelDescription d = load_hf_description(kStories);
  ASSERT_NE(d.arch, nullptr);
  EXPECT_EQ(d.arch->id, "llama");
  EXPECT_EQ(d.config.arch, "llama");
  EXPECT_EQ(d.config.hf_architecture, "LlamaForCausalLM");
  // The header MANIFEST.md gives for stories260K.
  EXPECT_EQ(d.config.d_model, 64);
  EXPECT_EQ(d.config.n_layer, 5);
  EXPECT_EQ(d.config.n_vocab, 512);
  EXPECT_EQ(d.config_json, read_file(kStories + "/config.json"));
  EXPECT_EQ(d.generation_config_json, read_file(kStories + "/generation_config.json"));
  const auto r = test::run_shell("sha256sum " + kStories + "/config.json");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(d.provenance.config_sha256, r.out.substr(0, 64));
  EXPECT_EQ(d.provenance.source, fs::canonical(kStories).string());
  EXPECT_EQ(d.tokenizer.kind, "sentencepiece");
  EXPECT_EQ(d.tokenizer.tokens.size(), 512u);
  EXPECT_EQ(d.chat_template, "");  // the folder has none
}

TEST(ModelDesc, TextConfigWinsOverRoot) {
  TempDir d;
  copy_stories_meta(d);
  Json cfg = Json::parse(read_file(kStories + "/config.json"));
  Json text = cfg;
  text.erase("architectures");
  cfg = Json{{"architectures", cfg["architectures"]}, {"hidden_size", 999}, {"num_hidden_layers", 99},
             {"text_config", text}};
  write_file(d / "config.json", cfg.dump());
  const ModelDescription m = load_hf_description(d.path());
  EXPECT_EQ(m.config.d_model, 64);
  EXPECT_EQ(m.config.n_layer, 5);
}

TEST(ModelDesc, ConfigErrorsNameFileAndKey) {
  TempDir d;
  copy_stories_meta(d);
  Json cfg = Json::parse(read_file(kStories + "/config.json"));

  write_file(d / "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], ");
  std::string e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "config.json")) << e;

  Json no_arch = cfg;
  no_arch.erase("architectures");
  write_file(d / "config.json", no_arch.dump());
  e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "config.json") && contains(e, "architectures")) << e;

  Json wrong_type = cfg;
  wrong_type["architectures"] = "LlamaForCausalLM";
  write_file(d / "config.json", wrong_type.dump());
  e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "config.json") && contains(e, "architectures")) << e;

  Json unknown = cfg;
  unknown["architectures"] = {"NoSuchModelForCausalLM"};
  write_file(d / "config.json", unknown.dump());
  e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "NoSuchModelForCausalLM")) << e;

  Json bad_field = cfg;
  bad_field["hidden_size"] = "sixty-four";
  write_file(d / "config.json", bad_field.dump());
  e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "hidden_size")) << e;

  write_file(d / "config.json", cfg.dump());
  write_file(d / "generation_config.json", "{nope");
  e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "generation_config.json")) << e;

  fs::remove(d / "generation_config.json");
  fs::remove(d / "config.json");
  e = error_of([&] { load_hf_description(d.path()); });
  EXPECT_TRUE(contains(e, "config.json")) << e;
}

TEST(ChatTemplate, FixturesUseTokenizerConfig) {
  for (const char* name : {"llama3", "llama3_2", "qwen3", "gemma3"}) {
    const std::string dir = fixture(std::string("tokenizers/") + name);
    const Json tc = Json::parse(read_file(dir + "/tokenizer_config.json"));
    EXPECT_EQ(load_chat_template(dir), tc["chat_template"].get<std::string>()) << name;
  }
  // Gemma 4's fixture has only chat_template.jinja.
  const std::string g4 = fixture("tokenizers/gemma4");
  EXPECT_EQ(load_chat_template(g4), read_file(g4 + "/chat_template.jinja"));
  EXPECT_TRUE(contains(load_chat_template(g4), "<|turn>"));
}

TEST(ChatTemplate, Precedence) {
  TempDir d;
  EXPECT_EQ(load_chat_template(d.path()), "");
  write_file(d / "chat_template.json", R"({"chat_template": "from json"})");
  EXPECT_EQ(load_chat_template(d.path()), "from json");
  write_file(d / "chat_template.jinja", "from jinja");
  EXPECT_EQ(load_chat_template(d.path()), "from jinja");
  write_file(d / "tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_EQ(load_chat_template(d.path()), "from jinja");
  write_file(d / "tokenizer_config.json",
             R"({"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "dflt"}]})");
  EXPECT_EQ(load_chat_template(d.path()), "dflt");
  write_file(d / "tokenizer_config.json", R"({"chat_template": "from config"})");
  EXPECT_EQ(load_chat_template(d.path()), "from config");
  write_file(d / "tokenizer_config.json", R"({"chat_template": 7})");
  const std::string e = error_of([&] { load_chat_template(d.path()); });
  EXPECT_TRUE(contains(e, "tokenizer_config.json") && contains(e, "chat_template")) << e;
}

}  // namespace
}  // namespace temper
