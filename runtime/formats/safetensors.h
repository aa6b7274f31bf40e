// safetensors reader: mmap, zero-copy, every header value checked against the file.
// A model is one file, a folder with model.safetensors, or a sharded folder whose
// model.safetensors.index.json is authoritative (stray *.safetensors files are ignored; an
// index entry that points outside the folder is refused).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "formats/tensor_source.h"

namespace temper {

class SafetensorsModel : public TensorSource {
 public:
  // `path`: a .safetensors file, a model.safetensors.index.json, or a folder holding either
  // model.safetensors.index.json (used if present) or model.safetensors. A folder with neither
  // is refused, even if it holds other *.safetensors files (the index is what says which
  // files belong to the model). Throws Error starting with the file at fault and naming the
  // tensor or key: truncated file, header length past the end, header not JSON or nested too
  // deep, unknown or unsupported dtype (only F32, F16, BF16 are read), data offsets out of
  // range, overlapping or not matching dtype x shape, shape products that overflow, duplicate
  // names across shards, missing shards, shards outside the folder, index and shards that
  // disagree about which tensor lives where.
  static std::unique_ptr<SafetensorsModel> open(const std::string& path);

  // Order: shards sorted by file name (model-00001-of-N first), and within a shard the order
  // of the tensors' data in the file. Deterministic, and reading in this order walks each
  // file front to back.
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  // A view into the mapping (`scratch` is never used); valid while the model lives, also after
  // release(). Throws Error for a tensor this model does not hold.
  std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>& scratch) const override;
  // Drops the tensor's pages from memory (madvise DONTNEED); a later read() faults them in again.
  void release(const TensorInfo& t) const override;
  // Streaming copy without the mapping (MappedFile::read_at): bytes [offset, offset +
  // dst.size()) of tensor `t`.
  void read_range(const TensorInfo& t, uint64_t offset, std::span<uint8_t> dst) const;
  // Where the tensor's bytes lie: its shard file, and the offset of its first byte there.
  struct FileSpot {
    const MappedFile& file;
    uint64_t offset;
  };
  FileSpot locate(const TensorInfo& t) const;

  const std::string& root() const { return root_; }          // folder (or the file's folder)
  std::vector<std::string> shard_files() const;              // names relative to root()
  uint64_t total_bytes() const;                              // sum of tensor bytes
  // "__metadata__" of each shard (string map), merged; the first shard wins on a conflict.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Location {
    size_t shard;
    uint64_t offset;  // absolute offset in the shard file
  };
  size_t index_of(const TensorInfo& t) const;  // throws Error if `t` is not ours
  std::string root_;
  std::vector<MappedFile> shards_;
  std::vector<std::string> shard_names_;
  std::vector<TensorInfo> tensors_;
  std::vector<Location> where_;  // parallel to tensors_
  std::map<std::string, size_t, std::less<>> by_name_;  // name -> index into tensors_
  std::map<std::string, std::string> metadata_;
  friend class SafetensorsLoader;
};

}  // namespace temper
