#include "core/json.h"

#include "core/error.h"

namespace temper {

Json parse_json(std::string_view text, const std::string& what, int max_depth) {
  // nlohmann parses recursively; reject absurd nesting before it can exhaust the stack.
  int depth = 0;
  bool in_string = false, escape = false;
  for (char c : text) {
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      TEMPER_CHECK(++depth <= max_depth, what, ": JSON nested deeper than ", max_depth, " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": not valid JSON: ", e.what());
  }
}

}  // namespace temper
