// Typed access to a GGUF's <arch>.* keys with llama.cpp's loader semantics (get_key casts any
// number type; get_key_or_arr takes one scalar for all layers or an array of n_layer), and to
// its tensor table. Used by gguf_model.cpp and the architectures' GgufReadRules::finish.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"

namespace temper {

class GgufKeys {
 public:
  GgufKeys(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  const GgufFile& file() const { return f_; }
  std::string key(std::string_view suffix) const { return arch_ + "." + std::string(suffix); }
  bool has(std::string_view suffix) const { return f_.has(key(suffix)); }

  // Any integer/float scalar type, as llama.cpp's get_key accepts (it casts). Throws Error naming
  // the file and key when missing or not a number.
  double number(std::string_view suffix) const;
  double number(std::string_view suffix, double fallback) const { return has(suffix) ? number(suffix) : fallback; }
  int integer(std::string_view suffix) const { return int(number(suffix)); }
  int integer(std::string_view suffix, int fallback) const { return has(suffix) ? integer(suffix) : fallback; }
  // A value per layer: an array of n_layer entries, or one scalar for all (absent: fallback,
  // else an Error).
  std::vector<double> per_layer(std::string_view suffix, int n_layer, std::optional<double> fallback = {}) const;
  // An array of numbers (any element type); empty when the key is absent.
  std::vector<double> array(std::string_view suffix) const;

  const TensorInfo* tensor(std::string_view name) const;  // nullptr when absent
  bool has_layer_tensor(int layer, std::string_view suffix) const;  // "blk.<layer>.<suffix>"
  // A 1-D F32/F16/BF16 tensor's values (rope_freqs, rope factors).
  std::vector<float> tensor_f32(const TensorInfo& t) const;

 private:
  double element(const GgufValue& v, uint64_t i, const std::string& k) const;
  const GgufFile& f_;
  std::string arch_;
};

}  // namespace temper
