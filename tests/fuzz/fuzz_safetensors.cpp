// A .safetensors file as convert and inspect open it: header JSON, dtypes, shapes, offsets,
// metadata; then every tensor's bytes read through the same calls convert uses.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "formats/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temper::fuzz::write_input("model.safetensors", data, size);
  try {
    auto st = temper::SafetensorsModel::open(path);
    (void)st->shard_files();
    (void)st->total_bytes();
    std::vector<uint8_t> scratch;
    uint64_t touched = 0;
    for (const auto& t : st->tensors()) {
      auto bytes = st->read(t, scratch);
      if (!bytes.empty()) touched += bytes.front() + bytes.back();  // touch both ends
      st->release(t);
    }
    (void)touched;
  } catch (const temper::Error&) {
  }
  return 0;
}
