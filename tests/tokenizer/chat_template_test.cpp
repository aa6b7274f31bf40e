// Chat templates: every rendering in fixtures/tokenizers/chat_template_renderings.json (made
// with jinja2 from the real templates) must be reproduced byte for byte.
#include <gtest/gtest.h>

#include <ctime>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "tokenizer/chat_template.h"
#include "util/test_util.h"

using namespace temper;

TEST(ChatTemplate, MatchesJinjaRenderings) {
  const std::string rel = "tokenizers/chat_template_renderings.json";
  const Json j = parse_json(read_text_file(test::fixture(rel)), rel);
  int n = 0;
  for (auto fam = j.at("renderings").begin(); fam != j.at("renderings").end(); ++fam) {
    const std::string name = fam.key();
    const std::string tmpl = read_text_file(test::fixture("tokenizers/" + name + "/chat_template.jinja"));
    const Json& sp = j.at("special_tokens").at(name);
    for (auto c = fam.value().begin(); c != fam.value().end(); ++c) {
      const std::string key = c.key();  // "<conversation>|add_generation_prompt=True"
      const std::string conv = key.substr(0, key.find('|'));
      std::vector<ChatMessage> msgs;
      for (const Json& m : j.at("conversations").at(conv)) msgs.push_back({m.at("role"), m.at("content")});
      ChatOptions o;
      o.add_generation_prompt = key.ends_with("=True");
      o.bos_token = sp.at("bos_token").is_string() ? sp["bos_token"].get<std::string>() : "";
      o.date = "01 Jan 2025";  // the renderer pinned strftime_now to 2025-01-01
      EXPECT_EQ(render_chat(tmpl, msgs, o), c.value().get<std::string>()) << name << " " << key;
      ++n;
    }
  }
  EXPECT_EQ(n, 20);
}

TEST(ChatTemplate, FamiliesAndErrors) {
  EXPECT_EQ(detect_chat_family(""), ChatFamily::kPlain);
  EXPECT_THROW(detect_chat_family("{{ messages[0].content }} [INST]"), Error);
  const std::vector<ChatMessage> msgs = {{"user", "a"}, {"user", "b"}};
  EXPECT_THROW(render_chat(ChatFamily::kGemma3, msgs, {}), Error);  // the template raises too
  EXPECT_EQ(render_chat(ChatFamily::kPlain, msgs, {}), "ab");
  // Qwen 3: a final assistant turn after the last user query gets an empty think block, and
  // enable_thinking=false closes the think block in the generation prompt.
  ChatOptions o;
  o.add_generation_prompt = false;
  const std::vector<ChatMessage> qa = {{"user", "q"}, {"assistant", "<think>\nr\n</think>\n\nans"}};
  EXPECT_EQ(render_chat(ChatFamily::kQwen3, qa, o), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nans<|im_end|>\n");
  o.add_generation_prompt = true;
  o.enable_thinking = false;
  EXPECT_EQ(render_chat(ChatFamily::kQwen3, std::vector<ChatMessage>{{"user", "q"}}, o),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

// Llama 3.1/3.3 templates have no strftime_now: HF and llama.cpp print their fixed date_string
// default, so temper must too (it printed today's date). Llama 3.2's template calls
// strftime_now, so today's date (UTC) is right there.
TEST(ChatTemplate, Llama3DateIsTheTemplatesOwn) {
  const std::string llama31 =  // the date lines of Meta's Llama 3.1 template, verbatim
      "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n"
      "{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
      "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}";
  const std::vector<ChatMessage> msgs = {{"user", "hi"}};
  EXPECT_NE(render_chat(llama31, msgs, {}).find("Today Date: 26 Jul 2024\n"), std::string::npos);
  ChatOptions pinned;
  pinned.date = "01 Jan 2025";
  EXPECT_NE(render_chat(llama31, msgs, pinned).find("Today Date: 01 Jan 2025\n"), std::string::npos);

  const std::string llama32 = read_text_file(test::fixture("tokenizers/llama3_2/chat_template.jinja"));
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char today[32];
  std::strftime(today, sizeof today, "%d %b %Y", &tm);
  EXPECT_NE(render_chat(llama32, msgs, {}).find(std::string("Today Date: ") + today + "\n"), std::string::npos);
}
