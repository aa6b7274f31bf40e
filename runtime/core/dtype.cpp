#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>

#include "core/error.h"

namespace temper {
namespace {

// Block sizes from ggml src/ggml-common.h (static_asserts there); QK_K = 256.
constexpr std::array<DTypeTraits, 22> kTraits = {{
    {DType::kF32, "f32", 1, 4, true},       {DType::kF16, "f16", 1, 2, true},
    {DType::kQ4_0, "q4_0", 32, 18, false},  {DType::kQ4_1, "q4_1", 32, 20, false},
    {DType::kQ5_0, "q5_0", 32, 22, false},  {DType::kQ5_1, "q5_1", 32, 24, false},
    {DType::kQ8_0, "q8_0", 32, 34, false},  {DType::kQ8_1, "q8_1", 32, 36, false},
    {DType::kQ2_K, "q2_K", 256, 84, false}, {DType::kQ3_K, "q3_K", 256, 110, false},
    {DType::kQ4_K, "q4_K", 256, 144, false}, {DType::kQ5_K, "q5_K", 256, 176, false},
    {DType::kQ6_K, "q6_K", 256, 210, false}, {DType::kQ8_K, "q8_K", 256, 292, false},
    {DType::kIQ4_NL, "iq4_nl", 32, 18, false}, {DType::kIQ4_XS, "iq4_xs", 256, 136, false},
    {DType::kI8, "i8", 1, 1, false},        {DType::kI16, "i16", 1, 2, false},
    {DType::kI32, "i32", 1, 4, false},      {DType::kI64, "i64", 1, 8, false},
    {DType::kF64, "f64", 1, 8, true},       {DType::kBF16, "bf16", 1, 2, true},
}};

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(uint8_t(x)) == std::tolower(uint8_t(y));
         });
}

}  // namespace

std::span<const DTypeTraits> all_dtypes() { return kTraits; }

const DTypeTraits& dtype_traits(DType t) {
  for (const auto& tr : kTraits)
    if (tr.type == t) return tr;
  fail("unknown element type id ", int(t));
}

std::optional<DType> dtype_from_ggml_id(uint32_t id) {
  for (const auto& tr : kTraits)
    if (uint32_t(tr.type) == id) return tr.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& tr : kTraits)
    if (iequal(tr.name, name)) return tr.type;
  return std::nullopt;
}

uint64_t dtype_bytes(DType t, uint64_t n_elems) {
  const auto& tr = dtype_traits(t);
  TEMPER_CHECK(n_elems % uint64_t(tr.block_elems) == 0, n_elems, " elements are not a whole number of ",
               tr.name, " blocks of ", tr.block_elems);
  const uint64_t blocks = n_elems / uint64_t(tr.block_elems);
  TEMPER_CHECK(blocks <= std::numeric_limits<uint64_t>::max() / uint64_t(tr.block_bytes),
               "byte size of ", n_elems, " ", tr.name, " elements overflows");
  return blocks * uint64_t(tr.block_bytes);
}

uint64_t checked_numel(std::span<const int64_t> shape, std::string_view what) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    TEMPER_CHECK(d >= 0, what, ": negative dimension ", d, " in shape ", shape_str(shape));
    TEMPER_CHECK(d == 0 || n <= uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(d), what,
                 ": shape ", shape_str(shape), " overflows the element count");
    n *= uint64_t(d);
  }
  return n;
}

std::string shape_str(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace temper
