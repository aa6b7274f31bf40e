// Chat-template rendering for the families temper supports, recognised from the template text
// (Llama 3 / 3.x, Qwen 3 and plain ChatML, Gemma 3, Gemma 4, no template = plain text). Each
// renderer reproduces what the model's Jinja template outputs for text-only conversations.
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace temper {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (Gemma 4 also "developer")
  std::string content;
};

enum class ChatFamily { kPlain, kLlama3, kLlama3Dated, kChatML, kQwen3, kGemma3, kGemma4 };

struct ChatOptions {
  bool add_generation_prompt = true;
  std::string bos_token;                // the template's bos_token variable
  std::optional<bool> enable_thinking;  // unset = the template's own default
  std::string date;                     // Llama 3.x "Today Date" ("01 Jan 2025"); "" = today (UTC)
                                        // or, given the template text, its own default
};

// Throws Error naming what the template text contains when it matches no supported family.
ChatFamily detect_chat_family(std::string_view template_text);
const char* chat_family_name(ChatFamily f);

// Renders `messages`; throws Error for conversations the template itself would reject
// (e.g. Gemma 3 roles that do not alternate user/assistant).
std::string render_chat(ChatFamily family, std::span<const ChatMessage> messages, const ChatOptions& opt);
// With the template text at hand, an empty `opt.date` becomes the date the template itself would
// print: today only where it calls strftime_now (Llama 3.2), else its fixed `date_string`
// default (Llama 3.1/3.3: "26 Jul 2024", as HF and llama.cpp render it).
std::string render_chat(std::string_view template_text, std::span<const ChatMessage> messages, ChatOptions opt);

}  // namespace temper
