// Chat and instruction training data with prompt masking (issue 9, item 5). A JSONL record is
// one example in one of the shapes people have:
//   {"messages": [{"role", "content"}, ...]}       rendered with the model's chat template
//   {"prompt": ..., "completion": ...}             strings, or lists of messages (TRL's
//                                                  conversational prompt-completion)
//   {"instruction", "input" (optional), "output"}  Alpaca
//   {"text": ...}                                  trained everywhere
// Rendering (what the tokens are):
//   - With a chat template, string prompt/completion become a user turn and an assistant turn;
//     Alpaca becomes a user turn "instruction" (+ "\n\n" + input when input is not empty) and an
//     assistant turn "output"; the text is render_chat(messages, add_generation_prompt=false)
//     tokenised with special tokens parsed and no BOS/EOS added (HF apply_chat_template does
//     the same; the template writes BOS itself).
//   - Without a template (e.g. stories260K): BOS + prompt + completion + EOS (TRL's
//     non-conversational prompt-completion: the texts concatenated, EOS appended to the
//     completion); Alpaca's prompt is Stanford Alpaca's PROMPT_DICT text; messages are the
//     contents one after another with EOS after each assistant content.
//   - text: BOS + text + EOS (a template, if any, is not applied: text is already formatted).
// Mask (--train-on completion, the default): trained are exactly the tokens of each assistant
// content (or the completion) plus the end-of-turn token that closes it (<|eot_id|>,
// <|im_end|>, <end_of_turn>, or EOS without a template); role headers, system and user turns
// and template scaffolding (e.g. Qwen 3's empty think block) are not. --train-on all trains
// every token. Compared with TRL's SFTTrainer (1.x, conversational prompt-completion: mask =
// tokens after apply_chat_template(prompt, add_generation_prompt=True)), this also masks what a
// template writes after the end-of-turn token (the "\n" of ChatML/Gemma) and Qwen 3's empty
// think block before the answer: both are fixed scaffolding, not the model's answer. Token boundaries are found by tokenising each rendered prefix and checking it is
// a prefix of the whole; when a token straddles the prompt/answer boundary it is trained (it
// holds answer text) and counted in DataStats::merged_boundaries.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

namespace temper::train {

enum class TrainOn { kCompletion, kAll };

struct ChatDataOptions {
  int seq = 0;                       // longest example in tokens
  TrainOn train_on = TrainOn::kCompletion;
  bool drop_long = false;            // drop examples longer than seq instead of truncating them
  std::string chat_template;         // Jinja source; "" = no template
  std::string date = "01 Jan 2025";  // Llama 3.x "Today Date": fixed, so the data is reproducible
};

struct ChatDataStats {
  int64_t records = 0, examples = 0, tokens = 0, trained = 0;
  int64_t truncated = 0;          // longer than seq, cut to seq
  int64_t dropped_long = 0;       // longer than seq, dropped (--drop-long)
  int64_t empty_mask = 0;         // no trained token (after truncation): skipped
  int64_t merged_boundaries = 0;  // a token straddling a prompt/answer boundary (trained)
};

// One record -> one example, not yet cut to seq. `where` ("file:line") prefixes errors: an
// unknown shape (the accepted fields listed), a message that is not {role, content} strings, a
// conversation the template rejects, a template whose answer is not closed by an end-of-turn
// token.
Example example_from_record(const Json& record, const Tokenizer& tok, const ChatDataOptions& opt,
                            const std::string& where, ChatDataStats& stats);

// Calls fn(example) for each record of a .jsonl file (any mix of the shapes above), in order,
// skipping blank lines; counts stats.records. Throws Error naming the file and line for a
// malformed line or record.
void for_each_chat_example(const std::string& path, const Tokenizer& tok, const ChatDataOptions& opt,
                           ChatDataStats& stats, const std::function<void(Example&&)>& fn);

// Every record of a .jsonl file rendered whole (every token kept, no length limit) and
// concatenated into one token stream, as calibration reads chat data (`temper imatrix --data`,
// `quantize --calibrate`, `--bpw-data`): each conversation starts with the BOS its template
// writes; one that renders to its BOS alone holds no text and is left out. Throws Error,
// prefixed by `what` (e.g. "--calibrate FILE"), for a missing file or when nothing renders.
std::vector<int32_t> chat_token_stream(const std::string& path, const Tokenizer& tok, const std::string& chat_template,
                                       const std::string& what);

// Reads a .jsonl file of records (any mix of the shapes above). Examples longer than seq are
// truncated (counted) or dropped with drop_long; examples with no trained token are skipped
// and counted. Throws Error naming the file and line for a malformed line or record, and when
// no example has a trained token.
std::vector<Example> read_chat_examples(const std::string& path, const Tokenizer& tok,
                                        const ChatDataOptions& opt, ChatDataStats& stats);

// A held-out split: round(fraction * n) examples (at least 1) chosen by a seeded shuffle, the
// rest kept in their order for training. Throws Error if fraction is not in (0, 1) or the split
// would leave either side empty.
struct Split {
  std::vector<Example> train, val;
};
Split split_validation(std::vector<Example> examples, double fraction, uint64_t seed);

// --preview: the first n examples as text, one block per example, the trained tokens between
// "[[" and "]]" (or in green with color=true, for a terminal), control characters escaped
// ("\n" is shown as \n and then a line break, other bytes < 0x20 as \xNN).
std::string preview_examples(const std::vector<Example>& examples, const Tokenizer& tok, int n,
                             bool color);

}  // namespace temper::train
