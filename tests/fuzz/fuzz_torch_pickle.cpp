// A PEFT adapter_model.bin (torch.save: ZIP + pickle) as `lora import` opens it: the ZIP
// directory, the pickle interpreted without running it, every tensor read (views and strided
// gathers).
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "formats/torch_pickle.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temper::fuzz::write_input("adapter_model.bin", data, size);
  try {
    auto sd = temper::TorchStateDict::open(path);
    std::vector<uint8_t> scratch;
    uint64_t touched = 0;
    for (const auto& t : sd->tensors()) {
      auto bytes = sd->read(t, scratch);
      if (!bytes.empty()) touched += bytes.front() + bytes.back();  // touch both ends
    }
    (void)touched;
  } catch (const temper::Error&) {
  }
  return 0;
}
