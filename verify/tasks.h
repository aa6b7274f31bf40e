// The user's question set for `temper compare --tasks FILE.jsonl`. One JSON object per line:
//   {"question": "...", "answer": "42"}                    exact match on a generated answer
//   {"question": "...", "choices": ["a", "b"], "answer": 1}  multiple choice by log-likelihood
// Exact-match answers are read GSM8K style ("#### 42", also in the expected answer) or as the
// last number of the output; numbers compare by value text ("1,000" == "1000", "3.50" == "3.5").
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "eval_model.h"

namespace temper::verify {

struct TaskItem {
  int line = 0;        // 1-based line in the file
  std::string where;   // "FILE:LINE", for messages
  std::string question;
  std::vector<std::string> choices;  // empty: exact match
  int answer_index = -1;             // multiple choice
  std::string answer;                // exact match, normalized
  bool numeric = false;              // exact match on a number
};

// Throws Error "FILE:LINE: <what is wrong>" for a bad line; blank lines are skipped.
std::vector<TaskItem> load_tasks(const std::string& path);

// Canonical text of a number ("1,000.50" -> "1000.5", "+7" -> "7"); "" when `s` is not one.
std::string canonical_number(std::string_view s);
// The answer a model's output gives for `item` (a canonical number or lowercased text).
std::string extract_answer(std::string_view output, bool numeric);

struct TaskOutcome {
  bool correct = false;
  std::string given;  // the extracted answer, or the chosen choice's index
};

struct TaskResults {
  std::vector<TaskOutcome> items;
  size_t correct = 0;
  double accuracy() const { return items.empty() ? 0 : double(correct) / double(items.size()); }
};

// Runs every task on `m`: exact-match items generate greedily up to `max_new` tokens (through
// the chat template when the model has one); multiple-choice items pick the choice with the
// highest summed log-probability as a continuation of the question. A question (with a
// choice) longer than the model's training context is an error naming FILE:LINE, raised
// before any work on it.
TaskResults run_tasks(const EvalModel& m, const std::vector<TaskItem>& tasks, int max_new);

}  // namespace temper::verify
