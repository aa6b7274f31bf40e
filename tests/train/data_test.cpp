// Training data with prompt masking, on the real tokenizers and chat templates. Independent
// evidence: the rendered text must equal the HF Jinja rendering (chat_template_renderings.json),
// and the text of the trained tokens must equal the assistant contents from the JSON followed by
// the template's end-of-turn string, written here by hand per family.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "model/tokenizer_assets.h"
#include "train/data_chat.h"
#include "util/test_util.h"

using namespace temper;
using namespace temper::train;

namespace {

struct Family {
  std::string name, eot;
};
const Family kFamilies[] = {
    {"llama3", "<|eot_id|>"}, {"llama3_2", "<|eot_id|>"}, {"qwen3", "<|im_end|>"}, {"gemma3", "<end_of_turn>"}};

Tokenizer load_tok(const std::string& dir) { return Tokenizer::from_assets(load_tokenizer_assets(dir)); }

ChatDataOptions opts_for(const std::string& name, int seq = 4096) {
  ChatDataOptions o;
  o.seq = seq;
  o.chat_template = read_text_file(test::fixture("tokenizers/" + name + "/chat_template.jinja"));
  return o;
}

std::string pieces(const Tokenizer& tok, const Example& ex, bool trained) {
  std::string s;
  for (size_t i = 0; i < ex.tokens.size(); ++i)
    if (!trained || ex.trained[i]) s += tok.token_to_piece(ex.tokens[i]);
  return s;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The real tokenizers take seconds each to load (Gemma 3's file is 33 MB): one test loads each
// once and runs every template check on it.
void check_jinja_rendering_and_mask(const Family& f, const Tokenizer& tok) {
  const std::string rel = "tokenizers/chat_template_renderings.json";
  const Json j = parse_json(read_text_file(test::fixture(rel)), rel);
  Json conv = j.at("conversations").at("system_user_assistant_user");
  ChatDataOptions o = opts_for(f.name);
  ChatDataStats st;
  const Example ex = example_from_record(Json{{"messages", conv}}, tok, o, "x", st);
  EXPECT_EQ(pieces(tok, ex, false),
            j.at("renderings").at(f.name).at("system_user_assistant_user|add_generation_prompt=False").get<std::string>())
      << f.name;
  EXPECT_EQ(pieces(tok, ex, true), conv[2].at("content").get<std::string>() + f.eot) << f.name;
  // The special tokens written by the template are parsed as special: every end-of-turn string
  // of the rendering is one token.
  const std::string jinja =
      j.at("renderings").at(f.name).at("system_user_assistant_user|add_generation_prompt=False").get<std::string>();
  long eot_strings = 0;
  for (size_t p = jinja.find(f.eot); p != std::string::npos; p = jinja.find(f.eot, p + 1)) ++eot_strings;
  EXPECT_GE(eot_strings, 3);
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), tok.token_id(f.eot)), eot_strings) << f.name;
  // A second answer closing the conversation: both answers and their end-of-turn tokens.
  Json longer = conv;
  longer.push_back({{"role", "assistant"}, {"content", "3+3 equals 6."}});
  const Example ex2 = example_from_record(Json{{"messages", longer}}, tok, o, "x", st);
  EXPECT_EQ(pieces(tok, ex2, true), "2+2 equals 4." + f.eot + "3+3 equals 6." + f.eot) << f.name;
  EXPECT_EQ(st.merged_boundaries, 0) << f.name;
  o.train_on = TrainOn::kAll;
  const Example all = example_from_record(Json{{"messages", longer}}, tok, o, "x", st);
  EXPECT_EQ(std::count(all.trained.begin(), all.trained.end(), 1), long(all.tokens.size()) - 1) << f.name;
}

std::vector<Json> first_records(const std::string& rel, size_t n) {
  std::ifstream in(test::fixture(rel));
  std::vector<Json> recs;
  for (std::string line; recs.size() < n && std::getline(in, line);) recs.push_back(Json::parse(line));
  EXPECT_EQ(recs.size(), n) << rel;
  return recs;
}

void check_gsm8k(const Family& f, const Tokenizer& tok) {
  const std::vector<Json> recs = first_records("instruct/derived/gsm8k_train_messages.jsonl", 60);
  const ChatDataOptions o = opts_for(f.name);
  ChatDataStats st;
  for (size_t r = 0; r < recs.size(); ++r) {
    const Example ex = example_from_record(recs[r], tok, o, "gsm8k:" + std::to_string(r + 1), st);
    const std::string answer = recs[r]["messages"][1]["content"];
    ASSERT_EQ(pieces(tok, ex, true), answer + f.eot) << f.name << " record " << r;
    // The prompt side holds the question, untrained.
    EXPECT_NE(pieces(tok, ex, false).find(recs[r]["messages"][0]["content"].get<std::string>()), std::string::npos);
  }
  EXPECT_EQ(st.merged_boundaries, 0) << f.name;
}

void check_alpaca(const Family& f, const Tokenizer& tok, const std::string& user_head) {
  const std::vector<Json> recs = first_records("instruct/derived/self_instruct_seed_alpaca.jsonl", 40);
  const ChatDataOptions o = opts_for(f.name);
  ChatDataStats st;
  int with_input = 0;
  for (const Json& r : recs) {
    const Example ex = example_from_record(r, tok, o, "alpaca", st);
    const std::string instruction = r["instruction"], input = r["input"], output = r["output"];
    with_input += !input.empty();
    const std::string user = input.empty() ? instruction : instruction + "\n\n" + input;
    EXPECT_NE(pieces(tok, ex, false).find(user_head + user + f.eot), std::string::npos) << f.name;
    EXPECT_EQ(pieces(tok, ex, true), output + f.eot) << f.name;
  }
  EXPECT_GT(with_input, 5);
}

void check_qwen3_prompt_completion(const Tokenizer& tok) {
  const ChatDataOptions o = opts_for("qwen3");
  ChatDataStats st;
  // Strings: a user turn and an assistant turn; Qwen 3's empty think block is not trained.
  const Example a = example_from_record(Json{{"prompt", "Hi"}, {"completion", "Hello!"}}, tok, o, "x", st);
  EXPECT_EQ(pieces(tok, a, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n");
  EXPECT_EQ(pieces(tok, a, true), "Hello!<|im_end|>");
  // TRL's conversational form; reasoning the template keeps is trained.
  const Json conv = Json::parse(R"({"prompt":[{"role":"user","content":"Hi"}],
      "completion":[{"role":"assistant","content":"<think>\nwave back\n</think>\n\nHello!"}]})");
  const Example b = example_from_record(conv, tok, o, "x", st);
  EXPECT_EQ(pieces(tok, b, true), "<think>\nwave back\n</think>\n\nHello!<|im_end|>");
}

void check_llama3_preview(const Tokenizer& tok) {
  ChatDataStats st;
  const Example e = example_from_record(Json{{"prompt", "Say\thi"}, {"completion", "hi\nthere"}}, tok,
                                        opts_for("llama3"), "x", st);
  const std::string p = preview_examples({e, e}, tok, 1, false);
  EXPECT_NE(p.find("<|start_header_id|>user<|end_header_id|>\\n\n\\n\nSay\\x09hi<|eot_id|>"), std::string::npos) << p;
  EXPECT_NE(p.find("assistant<|end_header_id|>\\n\n\\n\n[[hi\\n\nthere<|eot_id|>]]"), std::string::npos) << p;
  EXPECT_EQ(p.find("example 2"), std::string::npos);
  const std::string coloured = preview_examples({e}, tok, 1, true);
  EXPECT_NE(coloured.find("\x1b[32mhi\\n\nthere<|eot_id|>\x1b[0m"), std::string::npos) << coloured;
}

}  // namespace

TEST(TrainData, RealTemplatesRenderLikeJinjaAndTrainExactlyTheAnswers) {
  for (const Family& f : kFamilies) {
    SCOPED_TRACE(f.name);
    const Tokenizer tok = load_tok(test::fixture("tokenizers/" + f.name));
    check_jinja_rendering_and_mask(f, tok);
    check_gsm8k(f, tok);
    if (f.name == "llama3_2") check_alpaca(f, tok, "<|start_header_id|>user<|end_header_id|>\n\n");
    if (f.name == "gemma3") check_alpaca(f, tok, "<start_of_turn>user\n");
    if (f.name == "qwen3") check_qwen3_prompt_completion(tok);
    if (f.name == "llama3") check_llama3_preview(tok);
  }
}

TEST(TrainData, NoTemplateIsTheConcatenatedText) {
  // stories260K (SentencePiece, no template): BOS + Alpaca prompt + output + EOS, the output and
  // EOS trained; the tokens are those of the concatenated text.
  const Tokenizer sp = load_tok(test::source_dir() + "/sample/stories260K");
  ChatDataOptions plain;
  plain.seq = 100000;
  ChatDataStats st;
  const Json r = {{"instruction", "Tell a story."}, {"input", ""}, {"output", "Once upon a time, there was a cat."}};
  const Example ex = example_from_record(r, sp, plain, "alpaca", st);
  const std::string prompt = "Below is an instruction that describes a task. Write a response that appropriately "
                             "completes the request.\n\n### Instruction:\nTell a story.\n\n### Response:\n";
  std::vector<int32_t> want = {sp.bos()};
  for (int32_t id : sp.encode(prompt + r["output"].get<std::string>(), false, false)) want.push_back(id);
  want.push_back(sp.eos());
  EXPECT_EQ(ex.tokens, want);
  std::vector<int32_t> trained_ids;
  for (size_t i = 0; i < ex.tokens.size(); ++i)
    if (ex.trained[i]) trained_ids.push_back(ex.tokens[i]);
  // The completion starts after "\n" (a clean token boundary): the trained ids are the output and EOS.
  EXPECT_EQ(sp.decode(trained_ids), "Once upon a time, there was a cat." + sp.token_to_piece(sp.eos()));
  // prompt/completion: the completion appended to the prompt (no separator), as TRL does.
  const Example pc = example_from_record(Json{{"prompt", "Once upon a time"}, {"completion", ", there was a cat."}},
                                         sp, plain, "x", st);
  std::vector<int32_t> pc_want = {sp.bos()};
  for (int32_t id : sp.encode("Once upon a time, there was a cat.", false, false)) pc_want.push_back(id);
  pc_want.push_back(sp.eos());
  EXPECT_EQ(pc.tokens, pc_want);
  trained_ids.clear();
  for (size_t i = 0; i < pc.tokens.size(); ++i)
    if (pc.trained[i]) trained_ids.push_back(pc.tokens[i]);
  EXPECT_EQ(sp.decode(trained_ids), ", there was a cat." + sp.token_to_piece(sp.eos()));
  // text: everything trained but the first token.
  const Example t = example_from_record(Json{{"text", "Once upon a time"}}, sp, plain, "x", st);
  EXPECT_EQ(t.tokens.front(), sp.bos());
  EXPECT_EQ(t.tokens.back(), sp.eos());
  EXPECT_EQ(std::count(t.trained.begin(), t.trained.end(), 1), long(t.tokens.size()) - 1);
}

TEST(TrainData, BadInputNamesFileAndLine) {
  test::TempDir dir;
  // stories260K's tokenizer loads fast; without a template the records are plain text.
  const Tokenizer tok = load_tok(test::source_dir() + "/sample/stories260K");
  ChatDataOptions o;
  o.seq = 64;
  auto read = [&](const std::string& body, ChatDataStats& st) {
    test::write_file(dir / "d.jsonl", body);
    return read_chat_examples(dir / "d.jsonl", tok, o, st);
  };
  const std::string ok = R"({"prompt":"q","completion":"a"})" "\n";
  ChatDataStats st;
  EXPECT_NE(error_of([&] { read(ok + "{\"prompt\": \n", st); }).find(dir / "d.jsonl:2: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([&] { read(ok + "\n" + R"({"question":"q","answer":"a"})", st); })
                .find(dir / "d.jsonl:3: a record of unknown shape (fields: answer, question); accepted: \"messages\""),
            std::string::npos);
  o.chat_template = read_text_file(test::fixture("tokenizers/gemma3/chat_template.jinja"));
  EXPECT_NE(error_of([&] { read("\n" R"({"messages":[{"role":"assistant","content":"a"}]})", st); })
                .find(dir / "d.jsonl:2: Gemma 3 chat template: conversation roles must alternate"),
            std::string::npos);
  // A template whose end-of-turn string is not one token of this vocabulary cannot mask.
  EXPECT_NE(error_of([&] { read(ok, st); })
                .find(dir / "d.jsonl:1: message 1: the gemma3 rendering does not close the answer with an end-of-turn token"),
            std::string::npos);
  o.chat_template.clear();
  EXPECT_NE(error_of([&] { read(R"({"messages":[{"role":"user","content":"a"}]})", st); })
                .find(dir / "d.jsonl:1: no assistant message to train on"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read(R"({"messages":[{"role":"user"}]})", st); })
                .find(dir / "d.jsonl:1: messages[0] must be an object with string \"role\" and \"content\""),
            std::string::npos);
  // A prompt longer than --seq: truncation leaves no trained token; one such record is skipped
  // and counted, all of them refused.
  const std::string long_prompt = R"({"prompt":")" + repeat("once upon a time ", 40) + R"(","completion":"a"})" "\n";
  st = {};
  EXPECT_EQ(read(long_prompt + ok, st).size(), 1u);
  EXPECT_EQ(st.truncated, 1);
  EXPECT_EQ(st.empty_mask, 1);
  st = {};
  EXPECT_NE(error_of([&] { read(long_prompt + long_prompt, st); })
                .find(dir / "d.jsonl: no token to train on (2 records; 2 with no trained token after prompt masking"),
            std::string::npos);
  o.drop_long = true;
  st = {};
  EXPECT_EQ(read(long_prompt + ok + ok, st).size(), 2u);
  EXPECT_EQ(st.dropped_long, 1);
  EXPECT_EQ(st.truncated, 0);
}

TEST(TrainData, ValidationSplitIsSeededAndDisjoint) {
  std::vector<Example> ex(20);
  for (int i = 0; i < 20; ++i) ex[i].tokens = {i};
  const Split a = split_validation(ex, 0.25, 7), b = split_validation(ex, 0.25, 7), c = split_validation(ex, 0.25, 8);
  ASSERT_EQ(a.val.size(), 5u);
  ASSERT_EQ(a.train.size(), 15u);
  std::vector<int32_t> va, vb, vc, all;
  for (const Example& e : a.val) va.push_back(e.tokens[0]);
  for (const Example& e : b.val) vb.push_back(e.tokens[0]);
  for (const Example& e : c.val) vc.push_back(e.tokens[0]);
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  for (const Example& e : a.train) all.push_back(e.tokens[0]);
  all.insert(all.end(), va.begin(), va.end());
  std::sort(all.begin(), all.end());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(all[i], i);
  EXPECT_THROW(split_validation(ex, 0, 1), Error);
  EXPECT_THROW(split_validation(std::vector<Example>(1), 0.5, 1), Error);
}
