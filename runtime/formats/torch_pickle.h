// A state dict saved by torch.save (PyTorch >= 1.6: a ZIP of data.pkl plus one member per
// storage), read WITHOUT running the pickle. Python's unpickler calls whatever functions the
// file names, so loading an untrusted .bin can execute code; this reader interprets the pickle
// opcodes itself and knows only what a state dict needs — dicts, tuples, numbers, strings and
// the calls that rebuild tensors (torch._utils._rebuild_tensor_v2, _rebuild_parameter,
// collections.OrderedDict). Any other function named in the file is refused by name.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "formats/tensor_source.h"
#include "formats/zip_stored.h"

namespace temper {

class TorchStateDict : public TensorSource {
 public:
  // Throws Error naming the file and the key, tensor or opcode at fault: not a ZIP torch.save
  // file (the pre-1.6 format is refused with the remedy), a pickle that calls anything else or
  // nests deeper than 64, a value that is not a tensor, dtypes other than float32/float16/
  // bfloat16, sizes or strides that reach outside their storage.
  static std::unique_ptr<TorchStateDict> open(const std::string& path);
  ~TorchStateDict() override;

  // In the order of the pickled dict.
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  // Row-major bytes: a view of the mapping for a contiguous tensor, else gathered into `scratch`.
  std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>& scratch) const override;

  struct Layout {
    std::string member;           // the storage's ZIP member
    uint64_t offset;              // first element, in elements
    std::vector<int64_t> stride;  // in elements, one per dimension
  };

 private:
  TorchStateDict(const std::string& path);
  MappedFile file_;
  std::unique_ptr<ZipStored> zip_;
  std::vector<TensorInfo> tensors_;
  std::vector<Layout> layouts_;  // parallel to tensors_
};

}  // namespace temper
