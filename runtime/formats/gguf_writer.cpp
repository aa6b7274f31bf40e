// Streaming GGUF v3 writer. Byte layout as ggml's gguf_write_out: header, KVs, tensor infos,
// zero padding to the alignment, then each tensor's bytes zero-padded to the alignment
// (including the last one), so ggml's strict offset check accepts the file.
#include <limits>

#include "formats/gguf.h"

namespace temper {
namespace {

constexpr uint32_t kGgufVersion = 3;

uint64_t pad_to(uint64_t n, uint64_t a) { return (a - n % a) % a; }

}  // namespace

GgufWriter::GgufWriter(AtomicOutput& out, uint32_t alignment) : out_(&out), alignment_(alignment) { init(); }

GgufWriter::GgufWriter(const std::string& path, bool overwrite, uint32_t alignment)
    : owned_(std::make_unique<AtomicOutput>(path, overwrite)), out_(owned_.get()), alignment_(alignment) {
  init();
}

void GgufWriter::init() {
  TEMPER_CHECK(alignment_ != 0 && (alignment_ & (alignment_ - 1)) == 0, path(), ": GGUF alignment ",
               alignment_, " is not a power of two");
  if (alignment_ != kGgufDefaultAlignment) {
    key_index_.emplace("general.alignment", 0);
    kvs_.emplace_back("general.alignment", GgufValue::scalar<uint32_t>(alignment_));
  }
}

GgufWriter::~GgufWriter() = default;

bool GgufWriter::has(std::string_view key) const { return key_index_.count(key) != 0; }

void GgufWriter::add(std::string key, GgufValue value) {
  TEMPER_CHECK(stage_ == Stage::kMeta, path(), ": key '", key, "' added after the header was written");
  TEMPER_CHECK(!key.empty(), path(), ": empty GGUF key");
  TEMPER_CHECK(key != "general.alignment", path(),
               ": 'general.alignment' is set through the GgufWriter constructor");
  TEMPER_CHECK(!has(key), path(), ": duplicate GGUF key '", key, "'");
  key_index_.emplace(key, kvs_.size());
  kvs_.emplace_back(std::move(key), std::move(value));
}

uint64_t GgufWriter::add_tensor(std::string name, DType type, std::span<const int64_t> shape) {
  std::vector<int64_t> ne(shape.rbegin(), shape.rend());
  if (ne.empty()) ne.push_back(1);
  return add_tensor_ne(std::move(name), type, ne);
}

uint64_t GgufWriter::add_tensor_ne(std::string name, DType type, std::span<const int64_t> ne) {
  TEMPER_CHECK(stage_ == Stage::kMeta, path(), ": tensor '", name, "' added after the header was written");
  TEMPER_CHECK(!name.empty() && name.size() <= kGgufMaxTensorName, path(), ": tensor name '", name, "' is ",
               name.size(), " bytes, GGUF allows 1..", kGgufMaxTensorName);
  TEMPER_CHECK(!tensor_index_.count(name), path(), ": duplicate tensor '", name, "'");
  TEMPER_CHECK(!ne.empty() && ne.size() <= size_t(kGgufMaxDims), path(), ": tensor '", name, "' has ",
               ne.size(), " dims, GGUF allows 1..", kGgufMaxDims);
  const uint64_t numel = checked_numel(ne, cat(path(), ": tensor '", name, "'"));
  TEMPER_CHECK(numel < uint64_t(std::numeric_limits<int64_t>::max()), path(), ": tensor '", name,
               "' has too many elements");
  const DTypeTraits& tr = dtype_traits(type);
  TEMPER_CHECK(ne[0] % tr.block_elems == 0, path(), ": tensor '", name, "': row length ", ne[0],
               " (ggml ne[0]) is not a multiple of the ", tr.name, " block size ", tr.block_elems);
  const uint64_t nbytes = dtype_bytes(type, numel);
  const uint64_t padded = nbytes + pad_to(nbytes, alignment_);
  TEMPER_CHECK(padded >= nbytes && data_size_ <= std::numeric_limits<uint64_t>::max() - padded, path(),
               ": data section size overflows at tensor '", name, "'");
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back({std::move(name), type, std::vector<int64_t>(ne.begin(), ne.end()), nbytes, data_size_});
  data_size_ += padded;
  return nbytes;
}

uint64_t GgufWriter::tensor_offset(size_t i) const {
  TEMPER_CHECK(i < tensors_.size(), path(), ": no tensor ", i);
  return tensors_[i].offset;
}

void GgufWriter::write_string(std::string_view s) {
  put(uint64_t(s.size()));
  put(s.data(), s.size());
}

void GgufWriter::write_value(const GgufValue& v) {
  put(uint32_t(v.type()));
  if (v.is_array()) {
    put(uint32_t(v.elem_type()));
    put(uint64_t(v.count()));
  }
  if (v.elem_type() != GgufType::kString) {
    put(v.bytes().data(), v.bytes().size());
  } else if (v.is_array()) {
    for (const auto& s : v.as_string_array()) write_string(s);
  } else {
    write_string(v.as_string());
  }
}

void GgufWriter::write_header() {
  TEMPER_CHECK(stage_ == Stage::kMeta, path(), ": GGUF header written twice");
  TEMPER_CHECK(out_->bytes_written() == 0, path(), ": GGUF output must start empty, it has ",
               out_->bytes_written(), " bytes");
  put("GGUF", 4);
  put(kGgufVersion);
  put(uint64_t(tensors_.size()));
  put(uint64_t(kvs_.size()));
  for (const auto& [key, value] : kvs_) {
    write_string(key);
    write_value(value);
  }
  for (const auto& t : tensors_) {
    write_string(t.name);
    put(uint32_t(t.ne.size()));
    for (int64_t n : t.ne) put(n);
    put(uint32_t(t.type));
    put(t.offset);
  }
  // ggml pads here even without tensors.
  out_->write_zeros(size_t(pad_to(out_->bytes_written(), alignment_)));
  data_start_ = out_->bytes_written();
  stage_ = Stage::kData;
  current_ = 0;
  current_bytes_ = 0;
}

void GgufWriter::write_tensor_data(std::string_view name, std::span<const uint8_t> bytes) {
  TEMPER_CHECK(stage_ == Stage::kData, path(), ": tensor '", name, "' data written ",
               stage_ == Stage::kMeta ? "before the header" : "after finish()");
  // Once the current tensor is complete, data for another name starts the next one
  // (zero-byte tensors are complete from the start and need no call).
  while (current_ < tensors_.size() && current_bytes_ == tensors_[current_].nbytes &&
         tensors_[current_].name != name) {
    ++current_;
    current_bytes_ = 0;
  }
  TEMPER_CHECK(current_ < tensors_.size(), path(), ": data for tensor '", name,
               "' after all declared tensors were written");
  const PendingTensor& t = tensors_[current_];
  TEMPER_CHECK(t.name == name, path(), ": data for tensor '", name, "' while expecting tensor '", t.name,
               "' (", current_bytes_, " of ", t.nbytes, " bytes written); tensors must be written in declared order");
  TEMPER_CHECK(bytes.size() <= t.nbytes - current_bytes_, path(), ": tensor '", name, "': ",
               current_bytes_ + bytes.size(), " bytes written, but its ", dtype_name(t.type), " shape ",
               shape_str(t.ne), " (ggml ne) holds ", t.nbytes);
  put(bytes.data(), bytes.size());
  current_bytes_ += bytes.size();
  if (current_bytes_ == t.nbytes) out_->write_zeros(size_t(pad_to(t.nbytes, alignment_)));
}

void GgufWriter::finish() {
  TEMPER_CHECK(stage_ == Stage::kData, path(),
               stage_ == Stage::kMeta ? ": finish() before write_header()" : ": finish() called twice");
  // Skip over completed tensors (a zero-byte tensor needs no write_tensor_data call).
  while (current_ < tensors_.size() && current_bytes_ == tensors_[current_].nbytes) {
    ++current_;
    current_bytes_ = 0;
  }
  if (current_ < tensors_.size())
    fail(path(), ": tensor '", tensors_[current_].name, "' got ", current_bytes_, " of ",
         tensors_[current_].nbytes, " bytes", current_ + 1 < tensors_.size() ? " (and later tensors none)" : "");
  const uint64_t expected = data_start_ + data_size_;
  TEMPER_CHECK(out_->bytes_written() == expected, path(), ": wrote ", out_->bytes_written(),
               " bytes, layout says ", expected);
  stage_ = Stage::kDone;
  out_->commit();
}

}  // namespace temper
