// An importance matrix as quantize --imatrix reads it: GGUF (llama-imatrix's current format)
// or the legacy .dat, chosen by the file's magic as load_imatrix() does.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temper::fuzz::write_input("imatrix.dat", data, size);
  try {
    (void)temper::load_imatrix(path);
  } catch (const temper::Error&) {
  }
  return 0;
}
