// Chat/instruction records -> examples with prompt masking (see data_chat.h).
#include "train/data_chat.h"

#include <algorithm>
#include <climits>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace temper::train {

namespace {

constexpr const char* kAccepted =
    "accepted: \"messages\" (list of {role, content}), \"prompt\" + \"completion\", "
    "\"instruction\" (+ \"input\") + \"output\", \"text\"";

// Stanford Alpaca's PROMPT_DICT (train.py), used when the model has no chat template.
std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty())
    return "Below is an instruction that describes a task. Write a response that appropriately "
           "completes the request.\n\n### Instruction:\n" + instruction + "\n\n### Response:\n";
  return "Below is an instruction that describes a task, paired with an input that provides further "
         "context. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

// The strings the supported templates close an assistant turn with (chat_template.cpp).
constexpr const char* kEndOfTurn[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<turn|>"};

bool is_end_of_turn(const Tokenizer& tok, int32_t id) {
  if (tok.is_eog(id) || id == tok.eos()) return true;
  const std::string piece = tok.token_to_piece(id);
  return std::any_of(std::begin(kEndOfTurn), std::end(kEndOfTurn), [&](const char* s) { return piece == s; });
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\n\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\n\r") + 1 - a);
}

// A conversation and, per message, whether its content is trained.
struct Conversation {
  std::vector<ChatMessage> msgs;
  std::vector<bool> answer;
};

std::string string_field(const Json& rec, const char* key, const std::string& where) {
  TEMPER_CHECK(rec[key].is_string(), where, ": field \"", key, "\" must be a string");
  return rec[key].get<std::string>();
}

void append_messages(const Json& list, const char* key, bool answers, Conversation& c, const std::string& where) {
  TEMPER_CHECK(list.is_array(), where, ": \"", key, "\" must be a list of {role, content} messages");
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& m = list[i];
    TEMPER_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
                     m["content"].is_string(),
                 where, ": ", key, "[", i, "] must be an object with string \"role\" and \"content\"");
    c.msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    c.answer.push_back(answers && c.msgs.back().role == "assistant");
  }
}

Conversation conversation_of(const Json& rec, bool has_template, const std::string& where) {
  Conversation c;
  if (rec.contains("messages")) {
    append_messages(rec["messages"], "messages", true, c, where);
  } else if (rec.contains("prompt") && rec.contains("completion")) {
    if (rec["prompt"].is_array() || rec["completion"].is_array()) {  // TRL conversational form
      append_messages(rec["prompt"], "prompt", false, c, where);
      append_messages(rec["completion"], "completion", true, c, where);
    } else {
      c.msgs = {{"user", string_field(rec, "prompt", where)}, {"assistant", string_field(rec, "completion", where)}};
      c.answer = {false, true};
    }
  } else if (rec.contains("instruction") && rec.contains("output")) {
    const std::string instruction = string_field(rec, "instruction", where);
    const std::string input = rec.contains("input") && !rec["input"].is_null() ? string_field(rec, "input", where) : "";
    const std::string user = has_template ? (input.empty() ? instruction : instruction + "\n\n" + input)
                                          : alpaca_prompt(instruction, input);
    c.msgs = {{"user", user}, {"assistant", string_field(rec, "output", where)}};
    c.answer = {false, true};
  } else {
    std::string fields;
    for (auto it = rec.begin(); it != rec.end(); ++it) fields += (fields.empty() ? "" : ", ") + it.key();
    fail(where, ": a record of unknown shape (fields: ", fields.empty() ? "none" : fields, "); ", kAccepted);
  }
  TEMPER_CHECK(std::count(c.answer.begin(), c.answer.end(), true) > 0, where,
               ": no assistant message to train on");
  return c;
}

// Token index where char offset `c` of `text` falls in `ids` (= encode(text)): the length of
// encode(text[:c]) when that is a prefix of ids. Otherwise a token straddles c; it is counted
// and the index of the first differing token returned with merged = true.
size_t token_boundary(const Tokenizer& tok, const std::string& text, size_t c, bool parse_special,
                      const std::vector<int32_t>& ids, bool& merged, ChatDataStats& stats) {
  const std::vector<int32_t> p = tok.encode(std::string_view(text).substr(0, c), false, parse_special);
  const size_t k = size_t(std::mismatch(p.begin(), p.end(), ids.begin(), ids.end()).first - p.begin());
  merged = k != p.size();
  stats.merged_boundaries += merged;
  return k;
}

// Character spans of the trained contents within one rendered text.
struct Span {
  size_t begin, end;
};

// Tokenises `text` and marks the tokens of each span (end-exclusive). Returns, per span, the
// index of the first token after it.
std::vector<size_t> mark_spans(const Tokenizer& tok, const std::string& text, bool parse_special,
                               const std::vector<Span>& spans, Example& ex, ChatDataStats& stats) {
  ex.tokens = tok.encode(text, false, parse_special);
  ex.trained.assign(ex.tokens.size(), 0);
  std::vector<size_t> after;
  for (const Span& s : spans) {
    // A token straddling either end holds answer text: it is trained.
    bool merged = false;
    const size_t a = token_boundary(tok, text, s.begin, parse_special, ex.tokens, merged, stats);
    size_t b = token_boundary(tok, text, s.end, parse_special, ex.tokens, merged, stats);
    if (merged && b < ex.tokens.size()) ++b;
    std::fill(ex.trained.begin() + long(a), ex.trained.begin() + long(b), 1);
    after.push_back(b);
  }
  return after;
}

// With a chat template: render the whole conversation once; each answer's content is located
// after the rendering of the messages before it (with the generation prompt when that is a
// prefix of the whole, as for most families), and must be followed by an end-of-turn token.
Example render_templated(const Conversation& c, const Tokenizer& tok, ChatFamily family, const ChatOptions& base,
                         const std::string& where, ChatDataStats& stats) {
  ChatOptions o = base;
  o.add_generation_prompt = false;
  const std::string full = render_chat(family, c.msgs, o);
  std::vector<Span> spans;
  std::vector<size_t> answer_msg;
  for (size_t i = 0; i < c.msgs.size(); ++i) {
    if (!c.answer[i]) continue;
    const std::span<const ChatMessage> before(c.msgs.data(), i);
    ChatOptions g = base;
    g.add_generation_prompt = true;
    const std::string gen_head = render_chat(family, before, g);
    const std::string head = full.starts_with(gen_head) ? gen_head : render_chat(family, before, o);
    TEMPER_CHECK(full.starts_with(head), where, ": message ", i, ": the ", chat_family_name(family),
                 " template renders the conversation before it differently inside the whole conversation");
    // Where the generation prompt and the answer part ways (Gemma 4's prompt opens an empty
    // thought channel its answers do not have): the content starts at or before this point.
    const size_t diverge = size_t(std::mismatch(gen_head.begin(), gen_head.end(), full.begin(), full.end()).first -
                                  gen_head.begin());
    const std::string& content = c.msgs[i].content;
    std::string needle = trim(content);
    if (const size_t t = content.rfind("</think>"); t != std::string::npos) needle = trim(content.substr(t + 8));
    size_t begin = std::string::npos;
    if (needle.empty()) {  // an empty answer: only its end-of-turn token is trained
      for (const char* e : kEndOfTurn) begin = std::min(begin, full.find(e, head.size()));
    } else {
      for (size_t p = diverge + 1; p-- > head.size() && begin == std::string::npos;)
        if (full.compare(p, needle.size(), needle) == 0) begin = p;
      if (begin == std::string::npos) begin = full.find(needle, diverge);
    }
    TEMPER_CHECK(begin != std::string::npos, where, ": message ", i, ": its content is not in the ",
                 chat_family_name(family), " rendering of the conversation");
    const size_t end = needle.empty() ? begin : begin + needle.size();
    // Reasoning the template keeps (Qwen 3's <think>...</think> of the last turn) is trained too.
    if (content.find("</think>") != std::string::npos)
      if (const size_t t = full.find("<think>", head.size()); t < begin) begin = t;
    spans.push_back({begin, end});
    answer_msg.push_back(i);
  }
  Example ex;
  const std::vector<size_t> after = mark_spans(tok, full, true, spans, ex, stats);
  for (size_t k = 0; k < after.size(); ++k) {
    TEMPER_CHECK(after[k] < ex.tokens.size() && is_end_of_turn(tok, ex.tokens[after[k]]), where, ": message ",
                 answer_msg[k], ": the ", chat_family_name(family), " rendering does not close the answer with an "
                 "end-of-turn token (found '", after[k] < ex.tokens.size() ? tok.token_to_piece(ex.tokens[after[k]]) : "",
                 "')");
    ex.trained[after[k]] = 1;
  }
  return ex;
}

// Without a template: the contents one after another, BOS first, EOS after each assistant
// message. The text between two EOS is tokenised as one piece, so a prompt and its completion
// tokenise as their concatenation would.
Example render_plain(const Conversation& c, const Tokenizer& tok, ChatDataStats& stats) {
  TEMPER_CHECK(tok.eos() >= 0, "the tokenizer has no EOS token to end an answer with (and the model no chat template)");
  Example ex;
  if (tok.bos() >= 0) ex.tokens = {tok.bos()}, ex.trained = {0};
  std::string piece;
  std::vector<Span> spans;
  auto flush = [&](bool eos_trained, bool add_eos) {
    Example part;
    mark_spans(tok, piece, false, spans, part, stats);
    ex.tokens.insert(ex.tokens.end(), part.tokens.begin(), part.tokens.end());
    ex.trained.insert(ex.trained.end(), part.trained.begin(), part.trained.end());
    if (add_eos) ex.tokens.push_back(tok.eos()), ex.trained.push_back(eos_trained);
    piece.clear();
    spans.clear();
  };
  for (size_t i = 0; i < c.msgs.size(); ++i) {
    const size_t begin = piece.size();
    piece += c.msgs[i].content;
    if (c.answer[i]) spans.push_back({begin, piece.size()});
    if (c.msgs[i].role == "assistant") flush(c.answer[i], true);
  }
  if (!piece.empty()) flush(false, false);
  return ex;
}

}  // namespace

Example example_from_record(const Json& rec, const Tokenizer& tok, const ChatDataOptions& opt,
                            const std::string& where, ChatDataStats& stats) {
  TEMPER_CHECK(rec.is_object(), where, ": a record must be a JSON object; ", kAccepted);
  Example ex;
  if (rec.contains("text") && !rec.contains("messages") && !rec.contains("prompt") && !rec.contains("instruction")) {
    ex.tokens = tok.encode(string_field(rec, "text", where), true, false);
    if (tok.eos() >= 0 && (ex.tokens.empty() || ex.tokens.back() != tok.eos())) ex.tokens.push_back(tok.eos());
    ex.trained.assign(ex.tokens.size(), 1);
  } else {
    const ChatFamily family = detect_chat_family(opt.chat_template);
    const Conversation c = conversation_of(rec, family != ChatFamily::kPlain, where);
    if (family == ChatFamily::kPlain) {
      ex = render_plain(c, tok, stats);
    } else {
      ChatOptions o;
      o.bos_token = tok.bos() >= 0 ? tok.token_to_piece(tok.bos()) : "";
      o.date = opt.date;
      try {
        ex = render_templated(c, tok, family, o, where, stats);
      } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.starts_with(where)) throw;
        fail(where, ": ", msg);
      }
    }
    if (opt.train_on == TrainOn::kAll) std::fill(ex.trained.begin(), ex.trained.end(), 1);
  }
  if (!ex.trained.empty()) ex.trained[0] = 0;  // nothing predicts the first token
  return ex;
}

void for_each_chat_example(const std::string& path, const Tokenizer& tok, const ChatDataOptions& opt,
                           ChatDataStats& stats, const std::function<void(Example&&)>& fn) {
  std::istringstream in(read_text_file(path));
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    Json rec;
    try {
      rec = Json::parse(line);
    } catch (const Json::exception& e) {
      fail(where, ": not valid JSON (", e.what(), ")");
    }
    ++stats.records;
    fn(example_from_record(rec, tok, opt, where, stats));
  }
}

std::vector<int32_t> chat_token_stream(const std::string& path, const Tokenizer& tok, const std::string& chat_template,
                                       const std::string& what) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), what, ": no such file");
  ChatDataOptions opt;
  opt.seq = INT_MAX;
  opt.train_on = TrainOn::kAll;
  opt.chat_template = chat_template;
  ChatDataStats stats;
  std::vector<int32_t> out;
  for_each_chat_example(path, tok, opt, stats, [&](Example&& ex) {
    if (ex.tokens.size() > 1 || (ex.tokens.size() == 1 && ex.tokens[0] != tok.bos()))
      out.insert(out.end(), ex.tokens.begin(), ex.tokens.end());
  });
  TEMPER_CHECK(!out.empty(), what, ": ", stats.records, " records render to no text",
               stats.records == 0 ? " (the file has no records)" : "");
  return out;
}

std::vector<Example> read_chat_examples(const std::string& path, const Tokenizer& tok, const ChatDataOptions& opt,
                                        ChatDataStats& stats) {
  TEMPER_CHECK(opt.seq >= 2, "--seq must be at least 2, got ", opt.seq);
  std::vector<Example> out;
  for_each_chat_example(path, tok, opt, stats, [&](Example&& ex) {
    if (int64_t(ex.tokens.size()) > opt.seq) {
      if (opt.drop_long) {
        ++stats.dropped_long;
        return;
      }
      ex.tokens.resize(size_t(opt.seq));
      ex.trained.resize(size_t(opt.seq));
      ++stats.truncated;
    }
    const int64_t trained = std::accumulate(ex.trained.begin(), ex.trained.end(), int64_t(0));
    if (trained == 0) {
      ++stats.empty_mask;
      return;
    }
    ++stats.examples;
    stats.tokens += int64_t(ex.tokens.size());
    stats.trained += trained;
    out.push_back(std::move(ex));
  });
  TEMPER_CHECK(!out.empty(), path, ": no token to train on (", stats.records, " records; ", stats.empty_mask,
               " with no trained token", opt.train_on == TrainOn::kCompletion ? " after prompt masking" : "",
               ", ", stats.dropped_long, " longer than --seq ", opt.seq, " dropped)");
  return out;
}

Split split_validation(std::vector<Example> examples, double fraction, uint64_t seed) {
  TEMPER_CHECK(fraction > 0 && fraction < 1, "--val-split must be in (0, 1), got ", fraction);
  const size_t n = examples.size();
  const size_t n_val = std::max<size_t>(1, size_t(fraction * double(n) + 0.5));
  TEMPER_CHECK(n_val < n, "--val-split ", fraction, " of ", n, " examples leaves none to train on");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  uint64_t state = seed;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[next() % i]);  // Fisher-Yates
  std::vector<bool> is_val(n, false);
  for (size_t i = 0; i < n_val; ++i) is_val[order[i]] = true;
  Split s;
  for (size_t i = 0; i < n; ++i) (is_val[i] ? s.val : s.train).push_back(std::move(examples[i]));
  return s;
}

std::string preview_examples(const std::vector<Example>& examples, const Tokenizer& tok, int n, bool color) {
  const std::string open = color ? "\x1b[32m" : "[[", close = color ? "\x1b[0m" : "]]";
  std::string out;
  for (size_t e = 0; e < examples.size() && e < size_t(std::max(n, 0)); ++e) {
    const Example& ex = examples[e];
    const int64_t trained = std::accumulate(ex.trained.begin(), ex.trained.end(), int64_t(0));
    out += "--- example " + std::to_string(e + 1) + ": " + std::to_string(ex.tokens.size()) + " tokens, " +
           std::to_string(trained) + " trained\n";
    bool in = false;
    for (size_t i = 0; i < ex.tokens.size(); ++i) {
      const bool t = i < ex.trained.size() && ex.trained[i];
      if (t != in) out += t ? open : close, in = t;
      for (const unsigned char ch : tok.token_to_piece(ex.tokens[i])) {
        if (ch == '\n') {
          out += "\\n\n";
        } else if (ch < 0x20 || ch == 0x7f) {
          static const char* hex = "0123456789abcdef";
          out += std::string("\\x") + hex[ch >> 4] + hex[ch & 15];
        } else {
          out += char(ch);
        }
      }
    }
    if (in) out += close;
    out += "\n";
  }
  return out;
}

}  // namespace temper::train
