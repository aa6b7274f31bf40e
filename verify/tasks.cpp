// Reading the JSONL question set and extracting answers from generated text.
#include "tasks.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"

namespace temper::verify {
namespace {

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Lowercase, trimmed, without trailing sentence punctuation.
std::string normalize_text(std::string_view s) {
  std::string t = trim(s);
  while (!t.empty() && std::string_view(".!?,;:").find(t.back()) != std::string_view::npos) t.pop_back();
  for (char& c : t) c = char(std::tolower(static_cast<unsigned char>(c)));
  return trim(t);
}

const std::regex& number_regex() {
  static const std::regex re(R"([-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)");
  return re;
}

// Text after the last "####", or nullopt-like "" flag via the bool.
bool after_marker(std::string_view s, std::string_view& tail) {
  const size_t at = s.rfind("####");
  if (at == std::string_view::npos) return false;
  tail = s.substr(at + 4);
  return true;
}

std::string first_line(std::string_view s) {
  std::string t = trim(s);
  return t.substr(0, t.find('\n'));
}

}  // namespace

std::string canonical_number(std::string_view s) {
  std::string t = trim(s);
  while (!t.empty() && (t.front() == '$')) t.erase(t.begin());
  while (!t.empty() && (t.back() == '%' || t.back() == '.')) t.pop_back();
  if (!std::regex_match(t, number_regex())) return "";
  t.erase(std::remove(t.begin(), t.end(), ','), t.end());
  if (t.front() == '+') t.erase(t.begin());
  if (t.find('.') != std::string::npos) {
    while (t.back() == '0') t.pop_back();
    if (t.back() == '.') t.pop_back();
  }
  const bool neg = t.front() == '-';
  std::string digits = neg ? t.substr(1) : t;
  if (digits.front() == '.') digits.insert(digits.begin(), '0');
  while (digits.size() > 1 && digits[0] == '0' && digits[1] != '.') digits.erase(digits.begin());
  if (digits == "0") return "0";
  return (neg ? "-" : "") + digits;
}

std::string extract_answer(std::string_view output, bool numeric) {
  std::string_view tail;
  const bool marked = after_marker(output, tail);
  if (numeric) {
    const std::string where(marked ? tail : output);
    std::string last;
    for (auto it = std::sregex_iterator(where.begin(), where.end(), number_regex()); it != std::sregex_iterator(); ++it) {
      last = it->str();
      if (marked) break;  // the first number after "####"
    }
    return last.empty() ? "" : canonical_number(last);
  }
  if (marked) return normalize_text(first_line(tail));
  std::istringstream lines{std::string(output)};
  std::string line, last;
  while (std::getline(lines, line))
    if (!trim(line).empty()) last = line;
  return normalize_text(last);
}

std::vector<TaskItem> load_tasks(const std::string& path) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), "tasks file ", path, ": no such file");
  std::istringstream in(read_text_file(path));
  std::vector<TaskItem> items;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (trim(line).empty()) continue;
    const std::string where = cat(path, ":", n);
    Json j;
    try {
      j = parse_json(line, where);
    } catch (const Error& e) {
      fail(where, ": not a valid JSON line (", e.what(), ")");
    }
    TEMPER_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
    TEMPER_CHECK(j.contains("question") && j["question"].is_string(), where, ": missing string \"question\"");
    TEMPER_CHECK(j.contains("answer"), where, ": missing \"answer\"");
    TaskItem t;
    t.line = n;
    t.where = where;
    t.question = j["question"].get<std::string>();
    const Json& a = j["answer"];
    if (j.contains("choices")) {
      const Json& c = j["choices"];
      TEMPER_CHECK(c.is_array() && c.size() >= 2, where, ": \"choices\" must be an array of at least 2 strings");
      for (const Json& s : c) {
        TEMPER_CHECK(s.is_string(), where, ": \"choices\" must hold strings, found ", s.type_name());
        t.choices.push_back(s.get<std::string>());
      }
      TEMPER_CHECK(a.is_number_integer() && a.get<int64_t>() >= 0 && a.get<int64_t>() < int64_t(t.choices.size()),
                   where, ": \"answer\" must be the index (0..", t.choices.size() - 1, ") of the right choice, got ",
                   a.dump());
      t.answer_index = a.get<int>();
    } else {
      TEMPER_CHECK(a.is_string() || a.is_number(), where, ": \"answer\" must be a string or a number, got ", a.type_name());
      std::string text = a.is_string() ? a.get<std::string>() : a.dump();
      std::string_view tail;
      if (after_marker(text, tail)) text = first_line(tail);
      t.answer = canonical_number(text);
      t.numeric = !t.answer.empty();
      if (!t.numeric) t.answer = normalize_text(text);
      TEMPER_CHECK(!t.answer.empty(), where, ": empty \"answer\"");
    }
    items.push_back(std::move(t));
  }
  TEMPER_CHECK(!items.empty(), "tasks file ", path, ": no questions");
  return items;
}

}  // namespace temper::verify
