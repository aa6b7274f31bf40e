#include "formats/tensor_source.h"

namespace temper {

uint64_t TensorInfo::numel() const { return checked_numel(shape, name); }

const TensorInfo* TensorSource::find(std::string_view name) const {
  for (const auto& t : tensors())
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace temper
