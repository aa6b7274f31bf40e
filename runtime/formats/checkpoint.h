// temper's internal checkpoint: one HDF5 file (layout in docs/checkpoint-format.md).
// The only code that includes hdf5.h. Tensors are stored exactly (bf16 stays bf16, bit for
// bit), chunked, optionally zstd-compressed through HDF5 filter 32015.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "formats/tensor_source.h"
#include "model/model_desc.h"

namespace temper {

// 2: strings fixed-length, lists of strings as NUL-terminated bytes, no variable-length data
// (1, with HDF5 variable-length strings, is refused: re-run convert).
constexpr int kCheckpointFormatVersion = 2;

struct CheckpointWriteOptions {
  int zstd_level = 0;  // 0 = uncompressed; 1..22 = zstd level
};

class CheckpointWriter {
 public:
  // Creates `path`, which must not exist or be empty (callers pass an AtomicOutput's
  // temp_path(), whose empty placeholder is replaced).
  CheckpointWriter(const std::string& path, const CheckpointWriteOptions& opts);
  ~CheckpointWriter();
  void write_description(const ModelDescription& desc);
  void write_tensor(const TensorInfo& info, std::span<const uint8_t> data);
  // The same, with the bytes pulled in pieces, front to back: read(offset, max_len) returns
  // the tensor's bytes from `offset` on, at least 1 and at most max_len of them, valid until the
  // next call. An uncompressed tensor is written straight from these views to its chunks' place
  // in the file, never held whole.
  using ByteReader = std::function<std::span<const uint8_t>(uint64_t offset, uint64_t max_len)>;
  void write_tensor(const TensorInfo& info, const ByteReader& read);
  void close();  // flushes; throws Error on failure (e.g. disk full)

  struct Impl;  // defined in checkpoint.cpp, and only used there

 private:
  std::unique_ptr<Impl> impl_;
};

// What CheckpointReader checks besides the storage layout. kModel, for every command: the
// config and the tensor shapes agree (validate_model), so that no reader divides by a zero
// n_head or indexes past an empty tensor. kLayoutOnly: the storage layer alone, for the file
// format's own tests, whose descriptions do not describe a runnable model.
enum class CheckpointCheck { kModel, kLayoutOnly };

class CheckpointReader : public TensorSource {
 public:
  // Throws Error naming the file and the object at fault for anything missing or malformed,
  // including a format_version newer than this build understands.
  explicit CheckpointReader(const std::string& path, CheckpointCheck check = CheckpointCheck::kModel);
  ~CheckpointReader() override;
  const std::vector<TensorInfo>& tensors() const override;
  std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>& scratch) const override;
  const ModelDescription& description() const;
  int format_version() const;
  bool compressed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Registers the zstd filter (id 32015) with the HDF5 library in this process. Idempotent.
void register_zstd_filter();

}  // namespace temper
