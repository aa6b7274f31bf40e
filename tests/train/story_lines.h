// One-line stories the training tests feed `temper train` (ASCII, single spaces, so both
// temper's and PyTorch's tokenizers see the same text).
#pragma once

#include <cstddef>
#include <string>

#include "core/json.h"

namespace temper::test {

inline constexpr const char* kStoryLines[] = {
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the park with her big red ball.",
    "One day, a small dog came to the park and wanted to play too.",
    "Tom was a happy boy who liked to run and jump in the sun.",
    "The cat sat on the mat and looked at the bird in the tree.",
    "Mom made a big cake for the party and everyone was happy.",
    "The little fish swam in the blue sea with his friends.",
    "Ben found a shiny rock and showed it to his sister.",
    "It was a rainy day, so they played with toys inside the house.",
    "The old man gave the children some sweet apples from his garden.",
    "Sue and her friend built a tall tower with blocks.",
    "At night, the moon was bright and the stars were shining.",
};

// The first `count` stories as `{"text": ...}` JSONL lines.
inline std::string story_jsonl(std::size_t count = std::size(kStoryLines)) {
  std::string jsonl;
  for (std::size_t i = 0; i < count && i < std::size(kStoryLines); ++i)
    jsonl += Json({{"text", kStoryLines[i]}}).dump() + "\n";
  return jsonl;
}

}  // namespace temper::test
