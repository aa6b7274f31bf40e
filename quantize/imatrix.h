// Importance matrices as llama.cpp's llama-imatrix writes them (GGUF format, or the legacy .dat),
// normalised the way llama-quantize uses them: the mean squared activation of each input
// column, one block of ne[0] values per expert.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace temper {

struct Imatrix {
  std::string file, dataset;
  uint32_t chunks = 0;
  std::map<std::string, std::vector<float>> entries;  // GGUF tensor name -> values
};

// Throws Error naming the file and entry for anything malformed (missing imatrix.* keys,
// unpaired in_sum2/counts, sizes, non-finite values).
Imatrix load_imatrix(const std::string& path);

}  // namespace temper
