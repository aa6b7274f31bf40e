// Element types: ONE traits table for every type temper stores or reads. The numeric values
// are ggml's type ids (ggml include/ggml.h `enum ggml_type`), so GGUF can use them directly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace temper {

enum class DType : uint8_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kIQ4_NL = 20, kIQ4_XS = 23, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kBF16 = 30,
};

struct DTypeTraits {
  DType type;
  std::string_view name;      // ggml's name, e.g. "q4_K", "bf16"
  int block_elems;            // elements per block (1 for plain types)
  int block_bytes;            // bytes per block
  bool is_float;              // plain floating point (f32, f16, bf16, f64)
};

// Traits of a known type; throws Error for an id temper does not know.
const DTypeTraits& dtype_traits(DType t);
std::span<const DTypeTraits> all_dtypes();
std::optional<DType> dtype_from_ggml_id(uint32_t id);
std::optional<DType> dtype_from_name(std::string_view name);  // case-insensitive ggml name
inline std::string_view dtype_name(DType t) { return dtype_traits(t).name; }

// Bytes of `n_elems` elements; throws Error if n_elems is not a whole number of blocks or the
// byte count overflows.
uint64_t dtype_bytes(DType t, uint64_t n_elems);

// Product of dims with overflow checking; throws Error naming `what` on overflow or a
// negative dim.
uint64_t checked_numel(std::span<const int64_t> shape, std::string_view what);

// Shape as "[a, b, c]".
std::string shape_str(std::span<const int64_t> shape);

}  // namespace temper
