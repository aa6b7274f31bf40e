// The Modelfile's TEMPLATE, rendered with Go's text/template the way Ollama renders it
// (tests/scripts/ollama_render: .Messages with the system message in it, .System, .Prompt,
// .Response empty), must give the prompt the model's own Jinja template gives
// (fixtures/tokenizers/chat_template_renderings.json, rendered by jinja2) and the prompt
// `temper generate --chat` evaluates (render_chat), for every family temper writes a TEMPLATE for.
//
// Ollama always asks for the next assistant turn, so the renderings compared are those with
// add_generation_prompt=True, without the leading BOS (llama-server adds BOS when it tokenizes).
// Differences a Go template cannot avoid, not exercised by these conversations: HF's Llama 3
// and Gemma 3 templates strip whitespace around each message (Go templates have no trim), and
// Llama 3.2's "Today Date" comes from the Ollama server's local clock (HF: the local clock too;
// temper generate: UTC).
#include <gtest/gtest.h>

#include <ctime>

#include "core/file.h"
#include "core/json.h"
#include "model/model_desc.h"
#include "quantize/modelfile.h"
#include "tokenizer/chat_template.h"
#include "util/test_util.h"

namespace temper {
namespace {

using test::TempDir;

// Builds the renderer once per process, into the build folder, without network or a module
// cache; the rename keeps test processes running in parallel from running a half-written file.
const std::string& ollama_render() {
  static const std::string bin = [] {
    const std::string dir = test::build_dir() + "/go";
    const std::string exe = dir + "/ollama_render";
    const std::string env = "GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GOPATH=" + dir + "/path GOCACHE=" + dir + "/cache";
    auto r = test::run_shell("mkdir -p " + dir + " && cd " + dir + " && " + env + " go build -o " + exe + ".$$ " +
                             test::source_dir() + "/tests/scripts/ollama_render/main.go && mv -f " + exe + ".$$ " + exe);
    if (r.exit_code != 0) throw std::runtime_error("building ollama_render (needs golang-go): " + r.err);
    return exe;
  }();
  return bin;
}

using Chat = std::vector<ChatMessage>;

// The prompts Ollama renders from `modelfile` for each chat; `today` is what currentDate returns.
std::vector<std::string> render_with_ollama(const std::string& modelfile, const std::vector<Chat>& chats,
                                            const std::string& today = "2025-01-01") {
  TempDir d;
  test::write_file(d / "Modelfile", modelfile);
  Json in = Json::array();
  for (const Chat& c : chats) {
    Json msgs = Json::array();
    for (const ChatMessage& m : c) msgs.push_back({{"role", m.role}, {"content", m.content}});
    in.push_back(msgs);
  }
  test::write_file(d / "chats.json", in.dump());
  auto r = test::run_shell(ollama_render() + " -modelfile " + (d / "Modelfile") + " -today " + today + " < " +
                           (d / "chats.json"));
  if (r.exit_code != 0) throw std::runtime_error(r.err);
  return Json::parse(r.out).get<std::vector<std::string>>();
}

std::string modelfile_for(const std::string& chat_template) {
  ModelDescription desc;
  desc.chat_template = chat_template;
  return make_modelfile(desc, "./m.gguf");
}

struct Renderings {
  Json j = parse_json(read_text_file(test::fixture("tokenizers/chat_template_renderings.json")), "renderings");
  std::vector<std::string> names = {"user_only", "system_user_assistant_user"};
  std::vector<Chat> chats;
  Renderings() {
    for (const std::string& n : names) {
      chats.emplace_back();
      for (const Json& m : j.at("conversations").at(n)) chats.back().push_back({m.at("role"), m.at("content")});
    }
  }
  std::string jinja(const std::string& family) const {
    return read_text_file(test::fixture("tokenizers/" + family + "/chat_template.jinja"));
  }
  // The jinja2 rendering with the generation prompt, BOS removed.
  std::string expected(const std::string& family, const std::string& conv) const {
    std::string s = j.at("renderings").at(family).at(conv + "|add_generation_prompt=True");
    const Json& bos = j.at("special_tokens").at(family).at("bos_token");
    if (bos.is_string() && s.starts_with(bos.get<std::string>())) s.erase(0, bos.get<std::string>().size());
    return s;
  }
};

TEST(Modelfile, TemplatesRenderAsTheJinjaTemplates) {
  const Renderings f;
  for (const std::string family : {"llama3", "llama3_2", "qwen3", "gemma3"}) {
    const std::string jinja = f.jinja(family);
    const std::string mf = modelfile_for(jinja);
    ASSERT_NE(mf.find("TEMPLATE \"\"\""), std::string::npos) << family << "\n" << mf;
    const std::vector<std::string> got = render_with_ollama(mf, f.chats);
    for (size_t i = 0; i < f.chats.size(); ++i) {
      EXPECT_EQ(got[i], f.expected(family, f.names[i])) << family << " " << f.names[i] << "\n" << mf;
      ChatOptions o;  // what temper generate --chat renders (it adds BOS as a token)
      o.date = "01 Jan 2025";
      EXPECT_EQ(got[i], render_chat(jinja, f.chats[i], o)) << family << " " << f.names[i];
    }
  }
}

TEST(Modelfile, Llama32TodayDateFollowsOllamasClock) {
  const Renderings f;
  const std::string mf = modelfile_for(f.jinja("llama3_2"));
  EXPECT_NE(mf.find("Ollama >= 0.11.1"), std::string::npos) << mf;
  for (int month = 1; month <= 12; ++month) {
    char today[16], want[32];
    std::snprintf(today, sizeof today, "2024-%02d-0%d", month, month % 9 + 1);
    std::tm tm{};
    tm.tm_year = 124, tm.tm_mon = month - 1, tm.tm_mday = month % 9 + 1;
    std::strftime(want, sizeof want, "Today Date: %d %b %Y\n\n", &tm);  // the template's strftime_now("%d %b %Y")
    const std::string got = render_with_ollama(mf, {f.chats[0]}, today)[0];
    EXPECT_NE(got.find(want), std::string::npos) << today << ": " << got;
  }
}

// Llama 3.1's template has no strftime_now; its date_string default is what HF renders.
TEST(Modelfile, Llama31KeepsTheTemplatesFixedDate) {
  const Renderings f;
  std::string jinja = f.jinja("llama3_2");
  const std::string dated = "{%- if strftime_now is defined %}\n        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n"
                            "    {%- else %}\n        {%- set date_string = \"26 Jul 2024\" %}\n    {%- endif %}";
  const size_t p = jinja.find(dated);
  ASSERT_NE(p, std::string::npos);
  jinja.replace(p, dated.size(), "{%- set date_string = \"26 Jul 2024\" %}");  // as in Llama 3.1's template
  std::string want = f.expected("llama3_2", f.names[1]);
  want.replace(want.find("01 Jan 2025"), 11, "26 Jul 2024");
  EXPECT_EQ(render_with_ollama(modelfile_for(jinja), {f.chats[1]})[0], want);
}

// No chat template: the texts one after another, as temper generate --chat passes them.
TEST(Modelfile, PlainModelsGetTheTextsInOrder) {
  const Renderings f;
  const std::vector<std::string> got = render_with_ollama(modelfile_for(""), f.chats);
  for (size_t i = 0; i < f.chats.size(); ++i) EXPECT_EQ(got[i], render_chat(ChatFamily::kPlain, f.chats[i], {}));
  EXPECT_EQ(got[1], "You are a helpful assistant.What is 2+2?2+2 equals 4.And 3+3?");
}

// Ollama (>= 0.20) renders Gemma 4 with its built-in renderer, chosen from general.architecture,
// ahead of any TEMPLATE; a template temper has no renderer for is left to Ollama too.
TEST(Modelfile, NoTemplateWhereOllamaChoosesItself) {
  const Renderings f;
  const std::string gemma4 = modelfile_for(f.jinja("gemma4"));
  EXPECT_EQ(gemma4.find("\nTEMPLATE "), std::string::npos) << gemma4;
  EXPECT_NE(gemma4.find("gemma4"), std::string::npos) << gemma4;
  const std::string other = modelfile_for("{{ messages[0].content }} [INST]");
  EXPECT_EQ(other.find("\nTEMPLATE "), std::string::npos) << other;
}

}  // namespace
}  // namespace temper
