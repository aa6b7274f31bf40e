// Renderers for each supported chat-template family; each follows its Jinja source line by line
// (fixtures/tokenizers/*/chat_template.jinja) for system/user/assistant text messages.
#include "tokenizer/chat_template.h"

#include <ctime>

#include "core/error.h"

namespace temper {

namespace {
bool has(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
// Jinja's |trim (Python str.strip()).
std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_ws(s[b])) ++b;
  while (e > b && is_ws(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}
std::string strip_chars(std::string_view s, char c, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && s[b] == c) ++b;
  if (right)
    while (e > b && s[e - 1] == c) --e;
  return std::string(s.substr(b, e - b));
}

std::string today() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
  return buf;
}

std::string render_llama3(std::span<const ChatMessage> msgs, const ChatOptions& o, bool dated) {
  auto turn = [](const std::string& role, std::string_view content) {
    return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + trim(content) + "<|eot_id|>";
  };
  std::string out = o.bos_token;
  if (dated) {  // Llama 3.1+/3.2: a system turn always, with the knowledge-cutoff lines
    std::string system;
    if (!msgs.empty() && msgs[0].role == "system") system = trim(msgs[0].content), msgs = msgs.subspan(1);
    out += "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: " +
           (o.date.empty() ? today() : o.date) + "\n\n" + system + "<|eot_id|>";
    for (const ChatMessage& m : msgs) out += turn(m.role, m.content);
    if (o.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }
  for (const ChatMessage& m : msgs) out += turn(m.role, m.content);
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";  // the Llama 3.0 template always adds it
}

std::string render_chatml(std::span<const ChatMessage> msgs, const ChatOptions& o, bool qwen3) {
  std::string out;
  size_t start = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
    start = 1;
  }
  size_t last_query = msgs.size() - 1;
  for (size_t i = msgs.size(); i-- > 0;)
    if (msgs[i].role == "user") {
      last_query = i;
      break;
    }
  for (size_t i = start; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    if (m.role != "assistant" || !qwen3) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      continue;
    }
    std::string content = m.content, reasoning;
    if (const size_t end = content.rfind("</think>"); end != std::string::npos) {
      const std::string before = content.substr(0, content.find("</think>"));
      content = strip_chars(content.substr(end + 8), '\n', true, false);
      const std::string r = strip_chars(before, '\n', false, true);
      const size_t open = r.rfind("<think>");
      reasoning = strip_chars(open == std::string::npos ? r : r.substr(open + 7), '\n', true, false);
    }
    const bool last = i + 1 == msgs.size();
    if (i > last_query && (last || !reasoning.empty()))
      out += "<|im_start|>assistant\n<think>\n" + strip_chars(reasoning, '\n', true, true) + "\n</think>\n\n" +
             strip_chars(content, '\n', true, false);
    else
      out += "<|im_start|>assistant\n" + content;
    out += "<|im_end|>\n";
  }
  if (o.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (qwen3 && o.enable_thinking == false) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::string render_gemma3(std::span<const ChatMessage> msgs, const ChatOptions& o) {
  std::string out = o.bos_token, prefix;
  if (!msgs.empty() && msgs[0].role == "system") prefix = msgs[0].content + "\n\n", msgs = msgs.subspan(1);
  for (size_t i = 0; i < msgs.size(); ++i) {
    TEMPER_CHECK((msgs[i].role == "user") == (i % 2 == 0), "Gemma 3 chat template: conversation roles must alternate "
                 "user/assistant/user/assistant/... (message ", i, " is '", msgs[i].role, "')");
    const std::string role = msgs[i].role == "assistant" ? "model" : msgs[i].role;
    out += "<start_of_turn>" + role + "\n" + (i == 0 ? prefix : "") + trim(msgs[i].content) + "<end_of_turn>\n";
  }
  if (o.add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

// Gemma 4's strip_thinking macro: drops every "<|channel>...<channel|>" span, then trims.
std::string strip_thinking(std::string_view text) {
  std::string result;
  size_t pos = 0;
  while (true) {
    const size_t end = text.find("<channel|>", pos);
    const std::string_view part = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    const size_t open = part.find("<|channel>");
    result += open == std::string_view::npos ? part : part.substr(0, open);
    if (end == std::string_view::npos) break;
    pos = end + 10;
  }
  return trim(result);
}

std::string render_gemma4(std::span<const ChatMessage> msgs, const ChatOptions& o) {
  std::string out = o.bos_token;
  const bool thinking = o.enable_thinking.value_or(false);
  const bool system_first = !msgs.empty() && (msgs[0].role == "system" || msgs[0].role == "developer");
  if (thinking || system_first) {
    out += "<|turn>system\n";
    if (thinking) out += "<|think|>";
    if (system_first) out += trim(msgs[0].content), msgs = msgs.subspan(1);
    out += "<turn|>\n";
  }
  for (const ChatMessage& m : msgs) {
    const bool model = m.role == "assistant";
    out += "<|turn>" + (model ? std::string("model") : m.role) + "\n" + (model ? strip_thinking(m.content) : trim(m.content)) +
           "<turn|>\n";
  }
  if (o.add_generation_prompt) {
    out += "<|turn>model\n";
    if (!thinking) out += "<|channel>thought\n<channel|>";
  }
  return out;
}
}  // namespace

ChatFamily detect_chat_family(std::string_view t) {
  if (t.empty()) return ChatFamily::kPlain;
  if (has(t, "<|turn>")) return ChatFamily::kGemma4;
  if (has(t, "<start_of_turn>")) return ChatFamily::kGemma3;
  if (has(t, "<|start_header_id|>")) return has(t, "Cutting Knowledge Date") ? ChatFamily::kLlama3Dated : ChatFamily::kLlama3;
  if (has(t, "<|im_start|>")) return has(t, "<think>") ? ChatFamily::kQwen3 : ChatFamily::kChatML;
  fail("chat template of ", t.size(), " chars matches no supported family: it contains none of <|turn> (Gemma 4), "
       "<start_of_turn> (Gemma 3), <|start_header_id|> (Llama 3), <|im_start|> (ChatML/Qwen 3); it begins '",
       t.substr(0, 80), "'");
}

const char* chat_family_name(ChatFamily f) {
  switch (f) {
    case ChatFamily::kPlain: return "plain";
    case ChatFamily::kLlama3: return "llama3";
    case ChatFamily::kLlama3Dated: return "llama3.x";
    case ChatFamily::kChatML: return "chatml";
    case ChatFamily::kQwen3: return "qwen3";
    case ChatFamily::kGemma3: return "gemma3";
    case ChatFamily::kGemma4: return "gemma4";
  }
  return "?";
}

std::string render_chat(ChatFamily family, std::span<const ChatMessage> messages, const ChatOptions& opt) {
  switch (family) {
    case ChatFamily::kLlama3: return render_llama3(messages, opt, false);
    case ChatFamily::kLlama3Dated: return render_llama3(messages, opt, true);
    case ChatFamily::kChatML: return render_chatml(messages, opt, false);
    case ChatFamily::kQwen3: return render_chatml(messages, opt, true);
    case ChatFamily::kGemma3: return render_gemma3(messages, opt);
    case ChatFamily::kGemma4: return render_gemma4(messages, opt);
    case ChatFamily::kPlain: break;
  }
  std::string out;  // no template (stories260K): the texts one after another
  for (const ChatMessage& m : messages) out += m.content;
  return out;
}

namespace {
// The literal a Llama 3.x template falls back to: `set date_string = "26 Jul 2024"`; "" if none.
std::string template_default_date(std::string_view t) {
  static constexpr std::string_view kSet = "set date_string = \"";
  const size_t at = t.find(kSet);
  if (at == std::string_view::npos) return "";
  const size_t b = at + kSet.size(), e = t.find('"', b);
  return e == std::string_view::npos ? "" : std::string(t.substr(b, e - b));
}
}  // namespace

std::string render_chat(std::string_view template_text, std::span<const ChatMessage> messages, ChatOptions opt) {
  const ChatFamily family = detect_chat_family(template_text);
  if (family == ChatFamily::kLlama3Dated && opt.date.empty() && !has(template_text, "strftime_now"))
    opt.date = template_default_date(template_text);
  return render_chat(family, messages, opt);
}

}  // namespace temper
