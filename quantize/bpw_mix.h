// `temper quantize --target-bpw B` / `--max-kld X`: per-tensor types chosen by measurement. Each
// quantizable matrix gets a ladder of candidate types (k-quants Q2_K..Q6_K and Q8_0 for rows of
// 256; the 32-element types Q4_0, IQ4_NL, Q4_1, Q5_0, Q5_1, Q8_0 for rows of 32 that fit no 256
// block, which is where llama.cpp's fallbacks land; the output matrix no lower than 4 bits, as
// every llama.cpp mix keeps it), its KL sensitivity at each is measured (quantize/sensitivity.h),
// and the mix with the least summed KL within the size (or the smallest within the KL) is chosen
// (quantize/mix_select.h). Tensors pinned by --tensor-type, --output-tensor-type,
// --token-embedding-type, the Q4_0 lattice, or rows that fit no block keep the recipe's type.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quantize/gguf_plan.h"
#include "quantize/imatrix.h"
#include "quantize/mix_select.h"
#include "quantize/policy.h"
#include "quantize/sensitivity.h"

namespace temper {

struct MixOptions {
  double target_bpw = 0;     // > 0: bits per weight of the whole file (all tensors, as --dry-run counts)
  double max_kld = 0;        // > 0: the smallest file whose predicted KL is at most this
  SensitivityOptions sens;   // sens.data: the text the sensitivities are measured on
  bool enabled() const { return target_bpw > 0 || max_kld > 0; }
};

struct MixReport {
  bool used = false;
  double target_bpw = 0, max_kld = 0;
  uint64_t fixed_bytes = 0;   // tensors outside the search
  uint64_t budget_bytes = 0;  // for the searched tensors (--target-bpw)
  double predicted_kl = 0;    // sum of the chosen options' KL
  double measured_kl = -1;    // the chosen mix run as a whole on the same chunks (imatrix rounding)
  int ctx = 0, chunks = 0;
  std::vector<MixItem> items;  // searched tensors, their options and measured KL
  std::vector<int> pick;
  double seconds = 0;
};

// Measures and chooses; sets choices[i].type/.note of the searched tensors. `imatrix`: given
// (--imatrix), or empty and then filled with the one collected on the data. Throws Error for
// a budget below the smallest mix (saying the minimum bits per weight), a KL no mix reaches,
// and whatever the probe refuses; nothing is written before.
MixReport choose_mix(const MixOptions& opt, const OpenedModel& model, const std::vector<GgufTensorPlan>& plans,
                     std::vector<TypeChoice>& choices, Imatrix& imatrix);

// The candidate types of a tensor with rows of `ncols` (empty: none fits a block). `output`: the
// output matrix (or a tied embedding), kept at 4 bits or more.
std::vector<DType> mix_ladder(int64_t ncols, bool output);

// general.file_type of a mix: the file type named after the type holding the most weights.
FileType mix_file_type(const std::vector<GgufTensorPlan>& plans, const std::vector<TypeChoice>& choices,
                       FileType fallback);

}  // namespace temper
