// A --tasks JSONL file as compare reads it, plus the answer normalisation applied to its text.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "tasks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temper::fuzz::write_input("tasks.jsonl", data, size);
  try {
    for (const auto& t : temper::verify::load_tasks(path)) {
      (void)temper::verify::extract_answer(t.question, t.numeric);
      (void)temper::verify::canonical_number(t.answer);
    }
  } catch (const temper::Error&) {
  }
  return 0;
}
