// TensorSource: a read-only store of named tensors (safetensors set, temper checkpoint, GGUF).
// Shapes are PyTorch order (outermost first); data is row-major, little-endian, in the stored
// element type.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace temper {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first
  uint64_t nbytes = 0;
  uint64_t numel() const;
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  const TensorInfo* find(std::string_view name) const;  // nullptr if absent
  // The tensor's bytes. Sources that map their file return a view of the mapping and leave
  // `scratch` alone; others read into `scratch` and return a view of it. Either way the view
  // is valid until the next call with the same scratch, or the source is destroyed.
  virtual std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>& scratch) const = 0;
  // Hint: bytes of `t` are no longer needed (lets a mapping drop its pages so memory stays
  // bounded while streaming a large model).
  virtual void release(const TensorInfo& t) const {}
};

}  // namespace temper
