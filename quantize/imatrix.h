// Importance matrices as llama.cpp's llama-imatrix writes them (GGUF format, or the legacy .dat),
// normalised the way llama-quantize uses them: the mean squared activation of each input
// column, one block of ne[0] values per expert.
#pragma once
#include <cstdint>
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

// Raw collected sums as llama-imatrix keeps them: per weight matrix, n_mat blocks of ne0
// sums of squared activations and one token count per block (n_mat = experts, or 1).
struct ImatrixSums {
  std::vector<float> sums;     // (n_mat, ne0)
  std::vector<int64_t> counts;  // (n_mat)
};
struct ImatrixData {
  std::vector<std::string> datasets;
  uint32_t chunks = 0, chunk_size = 0;
  std::map<std::string, ImatrixSums> entries;  // GGUF weight name -> sums (sorted by name)
};

// llama-imatrix's GGUF format (general.type "imatrix", imatrix.datasets / chunk_count /
// chunk_size, W.in_sum2 [ne0, n_mat] and W.counts [1, n_mat] f32). Written to a temporary file
// and renamed; `inputs` are never overwritten.
void write_imatrix_gguf(const ImatrixData& d, const std::string& path, bool overwrite,
                        const std::vector<std::string>& inputs);
// The legacy .dat format (save_imatrix_legacy): entries with no data are left out, partial
// experts get 1; values are sum/count * ncall with ncall = ceil(max count / chunk_size).
void write_imatrix_dat(const ImatrixData& d, const std::string& path, bool overwrite,
                       const std::vector<std::string>& inputs);

}  // namespace temper
