// The one include point for the JSON library (nlohmann/json, Debian nlohmann-json3-dev).
#pragma once
#include <nlohmann/json.hpp>

namespace temper {
using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Parses `text` with a nesting limit; throws Error naming `what` (a file path) on bad JSON
// or nesting deeper than `max_depth`.
Json parse_json(std::string_view text, const std::string& what, int max_depth = 64);
}  // namespace temper
