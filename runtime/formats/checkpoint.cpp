// CheckpointWriter: writes the layout of docs/checkpoint-format.md (reader: checkpoint_read.cpp).
// Tensors are stored in their own element type, bit for bit, chunked along the outermost dims,
// optionally shuffle + zstd.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <type_traits>
#include <unordered_set>

#include "core/error.h"
#include "core/scratch.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_schema.h"
#include "formats/h5_util.h"
#include "formats/h5_zstd_filter.h"

namespace temper {
namespace {

using h5::Ctx;
using h5::Id;

// Chunks of about this many bytes: large enough for zstd and few index entries, small enough
// that a reader touching one row does not decompress much.
constexpr uint64_t kChunkTargetBytes = 2u << 20;

template <typename E>
std::string_view enum_to_name(const Ctx& c, std::string_view what, E v) {
  for (const auto& [value, name] : ckpt::enum_names(E{}))
    if (value == v) return name;
  c.fail(what, cat("invalid enum value ", int(v)));
}

// One scalar attribute; the C++ type picks the HDF5 type.
template <typename T>
void write_attr(const Ctx& c, hid_t obj, const char* name, const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    h5::write_string(c, obj, name, true, v);
  } else if constexpr (std::is_same_v<T, bool>) {
    uint8_t b = v ? 1 : 0;
    h5::write_scalar(c, obj, name, true, H5T_STD_U8LE, &b);
  } else if constexpr (std::is_same_v<T, float>) {
    h5::write_scalar(c, obj, name, true, H5T_IEEE_F32LE, &v);
  } else if constexpr (std::is_same_v<T, int>) {
    h5::write_i32(c, obj, name, v);
  } else {
    static_assert(std::is_enum_v<T>, "no HDF5 mapping for this field type");
    h5::write_string(c, obj, name, true, enum_to_name(c, h5::member_name(obj, name, true), v));
  }
}

template <typename S>
struct AttrWriter {
  const Ctx& c;
  hid_t obj;
  const S& s;
  template <typename T>
  void operator()(const char* name, T S::*m) const { write_attr(c, obj, name, s.*m); }
};

// One LayerConfig member across all layers -> a 1-D dataset of length n_layer.
struct ColumnWriter {
  const Ctx& c;
  hid_t group;
  const std::vector<LayerConfig>& layers;
  template <typename T>
  void operator()(const char* name, T LayerConfig::*m) const {
    if constexpr (std::is_enum_v<T>) {
      std::vector<std::string> col;
      for (const auto& l : layers) col.emplace_back(enum_to_name(c, h5::member_name(group, name, false), l.*m));
      h5::write_strings(c, group, name, col);
    } else {
      using Stored = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;
      static_assert(std::is_same_v<Stored, int> || std::is_same_v<Stored, float> || std::is_same_v<Stored, uint8_t>);
      hid_t type = std::is_same_v<Stored, int> ? H5T_STD_I32LE : std::is_same_v<Stored, float> ? H5T_IEEE_F32LE : H5T_STD_U8LE;
      std::vector<Stored> col;
      for (const auto& l : layers) col.push_back(Stored(l.*m));
      h5::write_array(c, group, name, type, col.data(), col.size());
    }
  }
};

// A ragged per-layer list (checkpoint_read.cpp read_ragged): the layers' values concatenated
// in layer order as `name`, and each layer's count as `name`_count.
void write_ragged(const Ctx& c, hid_t lg, const std::vector<LayerConfig>& layers, const std::string& name,
                  std::vector<float> LayerConfig::*member) {
  std::vector<float> values;
  std::vector<int32_t> counts;
  for (const auto& l : layers) {
    values.insert(values.end(), (l.*member).begin(), (l.*member).end());
    counts.push_back(int32_t((l.*member).size()));
  }
  h5::write_array(c, lg, name.c_str(), H5T_IEEE_F32LE, values.data(), values.size());
  h5::write_array(c, lg, (name + "_count").c_str(), H5T_STD_I32LE, counts.data(), counts.size());
}

void write_config(const Ctx& c, hid_t root, const ModelDescription& d) {
  const ModelConfig& cfg = d.config;
  Id g = h5::create_group(c, root, "config");
  ckpt::visit_model_fields(AttrWriter<ModelConfig>{c, g.get(), cfg});
  h5::write_string(c, g.get(), "config_json", false, d.config_json);
  h5::write_string(c, g.get(), "generation_config_json", false, d.generation_config_json);

  if (cfg.layers.size() != size_t(std::max(cfg.n_layer, 0)))
    c.fail("/config/layers", cat("config has n_layer = ", cfg.n_layer, " but ", cfg.layers.size(), " layer entries"));
  Id lg = h5::create_group(c, g.get(), "layers");
  ckpt::visit_layer_fields(ColumnWriter{c, lg.get(), cfg.layers});
  write_ragged(c, lg.get(), cfg.layers, "rope_freq_factors", &LayerConfig::rope_freq_factors);
  // LongRoPE, only when a layer uses it (checkpoints without it stay as they were).
  bool longrope = false;
  for (const auto& l : cfg.layers) longrope = longrope || !l.rope_freq_factors_long.empty() || l.rope_attn_factor != 1;
  if (!longrope) return;
  write_ragged(c, lg.get(), cfg.layers, "rope_freq_factors_long", &LayerConfig::rope_freq_factors_long);
  const ColumnWriter columns{c, lg.get(), cfg.layers};
  columns("rope_long_after", &LayerConfig::rope_long_after);
  columns("rope_attn_factor", &LayerConfig::rope_attn_factor);
}

void write_tokenizer(const Ctx& c, hid_t root, const TokenizerAssets& t) {
  Id g = h5::create_group(c, root, "tokenizer");
  ckpt::visit_tokenizer_fields(AttrWriter<TokenizerAssets>{c, g.get(), t});
  h5::write_strings(c, g.get(), "tokens", t.tokens);
  h5::write_array(c, g.get(), "scores", H5T_IEEE_F32LE, t.scores.data(), t.scores.size());
  h5::write_array(c, g.get(), "token_types", H5T_STD_I32LE, t.token_types.data(), t.token_types.size());
  h5::write_strings(c, g.get(), "merges", t.merges);
  h5::write_array(c, g.get(), "eog_ids", H5T_STD_I32LE, t.eog_ids.data(), t.eog_ids.size());
  ckpt::visit_tokenizer_files([&](const char* name, std::string TokenizerAssets::*m) {
    const std::string& bytes = t.*m;
    if (!bytes.empty()) h5::write_array(c, g.get(), name, H5T_STD_U8LE, bytes.data(), bytes.size());
  });
}

void write_provenance(const Ctx& c, hid_t root, const Provenance& p) {
  Id g = h5::create_group(c, root, "provenance");
  write_attr(c, g.get(), "source", p.source);
  write_attr(c, g.get(), "config_sha256", p.config_sha256);
  write_attr(c, g.get(), "converter", p.converter);
  write_attr(c, g.get(), "created_utc", p.created_utc);
  h5::write_strings(c, g.get(), "files", p.files);
}

// Chunk shape: whole trailing dims, split along the first dim whose slices fit the target,
// with chunks of equal size so that the last one is not mostly padding. Dims before the split
// one are 1, so every chunk holds one contiguous byte range of the row-major tensor.
struct ChunkShape {
  std::vector<hsize_t> dims;
  size_t split_dim = 0;
  uint64_t split_stride = 0;  // bytes of one step along split_dim
};

ChunkShape chunk_shape(const std::vector<int64_t>& shape, uint64_t elem_bytes) {
  const size_t rank = shape.size();
  std::vector<uint64_t> inner(rank);  // bytes of one step along dim d
  uint64_t b = elem_bytes;
  for (size_t d = rank; d-- > 0;) {
    inner[d] = b;
    b *= uint64_t(shape[d]);
  }
  ChunkShape c;
  c.dims.assign(rank, 1);
  size_t d = 0;
  while (inner[d] > kChunkTargetBytes) ++d;  // inner[rank-1] = elem_bytes always fits
  uint64_t n = uint64_t(shape[d]);
  uint64_t n_chunks = std::max<uint64_t>(1, (n * inner[d] + kChunkTargetBytes - 1) / kChunkTargetBytes);
  c.dims[d] = (n + n_chunks - 1) / n_chunks;
  for (size_t i = d + 1; i < rank; ++i) c.dims[i] = hsize_t(shape[i]);
  c.split_dim = d;
  c.split_stride = inner[d];
  return c;
}

// pwrite all of [data, data + n) at `offset`, or throw naming the file.
void write_all_at(const Ctx& c, int fd, const uint8_t* data, size_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    const ssize_t k = ::pwrite(fd, data, n, off_t(offset));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) c.fail(what, cat("write failed at byte ", offset, ": ", std::strerror(k < 0 ? errno : ENOSPC)));
    data += k;
    n -= size_t(k);
    offset += uint64_t(k);
  }
}

}  // namespace

struct CheckpointWriter::Impl {
  Ctx ctx;
  std::string path;
  int zstd_level = 0;
  int raw_fd = -1;  // our own descriptor for copying tensor bytes into their chunks
  bool can_reserve = true;  // the file system takes fallocate
  ScratchBuffer<uint8_t> buffer;
  Id file, tensors;
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  bool described = false, closed = false;
  explicit Impl(const std::string& p) : ctx(p), path(p) {}
  ~Impl() {
    if (raw_fd >= 0) ::close(raw_fd);
  }
};

CheckpointWriter::CheckpointWriter(const std::string& path, const CheckpointWriteOptions& opts)
    : impl_(std::make_unique<Impl>(path)) {
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  Impl& m = *impl_;
  const Ctx& c = m.ctx;
  if (opts.zstd_level < 0 || opts.zstd_level > 22) c.fail("/", cat("zstd level ", opts.zstd_level, " is outside 0..22"));
  m.zstd_level = opts.zstd_level;
  Id fapl = h5::file_access(c);  // the checksummed 1.10 format, as every .h5 temper writes
  // Replace an empty placeholder and create exclusively rather than truncate: ext4 flushes a
  // file that was truncated to size 0 to disk when it is closed (auto_da_alloc), which costs
  // as much as writing it.
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0 && !ec)
    std::filesystem::remove(path, ec);
  m.file = Id(c.check(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), "/",
                      "cannot create file (it must not exist already)"),
              H5Fclose);
  write_attr(c, m.file.get(), "format", std::string("temper-checkpoint"));
  h5::write_i32(c, m.file.get(), "format_version", kCheckpointFormatVersion);
  m.tensors = h5::create_group(c, m.file.get(), "tensors", /*track_order=*/true);
}

CheckpointWriter::~CheckpointWriter() {
  std::lock_guard lock(h5::library_mutex());
  impl_->tensors.reset();
  impl_->file.reset();
  H5Eclear2(H5E_DEFAULT);
}

void CheckpointWriter::write_description(const ModelDescription& desc) {
  std::lock_guard lock(h5::library_mutex());
  Impl& m = *impl_;
  const Ctx& c = m.ctx;
  if (m.closed) c.fail("/", "write_description after close");
  if (m.described) c.fail("/", "write_description called twice");
  const std::string arch_id = desc.arch ? std::string(desc.arch->id) : desc.config.arch;
  if (arch_id != desc.config.arch)
    c.fail("/", cat("description arch '", arch_id, "' differs from config.arch '", desc.config.arch, "'"));
  hid_t root = m.file.get();
  write_attr(c, root, "arch", arch_id);
  write_attr(c, root, "hf_architecture", desc.config.hf_architecture);
  write_config(c, root, desc);
  write_tokenizer(c, root, desc.tokenizer);
  h5::write_string(c, root, "chat_template", false, desc.chat_template);
  write_provenance(c, root, desc.provenance);
  m.described = true;
}

namespace {

// Checks `info` against the bytes it will get and creates its dataset (chunked, filtered as
// configured; with `early`, the chunks' file space is allocated at once so that their bytes can
// be written in place). Call with the library mutex held.
Id create_tensor_dataset(CheckpointWriter::Impl& m, const TensorInfo& info, uint64_t data_bytes, bool early) {
  const Ctx& c = m.ctx;
  const std::string what = cat("tensor '", info.name, "'");
  if (m.closed) c.fail(what, "write_tensor after close");
  if (info.name.empty() || info.name == "." || info.name.find('/') != std::string::npos)
    c.fail(what, "name must be non-empty, not '.', and without '/'");
  if (m.seen.count(info.name)) c.fail(what, "written twice");
  Id type = h5::tensor_type(info.dtype);
  if (!type.valid()) c.fail(what, cat("element type ", dtype_name(info.dtype), " cannot be stored in a checkpoint"));
  uint64_t numel = 0, nbytes = 0;
  try {
    numel = checked_numel(info.shape, info.name);
    nbytes = dtype_bytes(info.dtype, numel);
  } catch (const Error& e) {
    c.fail(what, e.what());  // same message, with the file named
  }
  if (info.nbytes != nbytes || data_bytes != nbytes)
    c.fail(what, cat(dtype_name(info.dtype), " ", shape_str(info.shape), " needs ", nbytes, " bytes; info says ",
                     info.nbytes, ", data has ", data_bytes));

  const std::vector<hsize_t> dims(info.shape.begin(), info.shape.end());
  Id space(c.check(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                   what, "cannot create dataspace"),
           H5Sclose);
  Id dcpl(c.check(H5Pcreate(H5P_DATASET_CREATE), what, "cannot create property list"), H5Pclose);
  c.check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), what, "cannot set fill time");
  if (early) c.check_status(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), what, "cannot set allocation time");
  // 0-d and empty tensors cannot be chunked; they stay contiguous (and uncompressed).
  if (!dims.empty() && numel > 0) {
    const auto chunk = chunk_shape(info.shape, nbytes / numel).dims;
    c.check_status(H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()), what, "cannot set chunking");
    if (m.zstd_level > 0) {
      const unsigned level = unsigned(m.zstd_level);
      c.check_status(H5Pset_shuffle(dcpl.get()), what, "cannot add the shuffle filter");
      c.check_status(H5Pset_filter(dcpl.get(), TEMPER_H5Z_FILTER_ZSTD, H5Z_FLAG_MANDATORY, 1, &level), what,
                     "cannot add the zstd filter");
    }
  }
  return Id(c.check(H5Dcreate2(m.tensors.get(), info.name.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(),
                               H5P_DEFAULT),
                    what, "cannot create dataset"),
            H5Dclose);
}

void finish_tensor_dataset(CheckpointWriter::Impl& m, const TensorInfo& info, Id& ds) {
  const Ctx& c = m.ctx;
  const std::string what = cat("tensor '", info.name, "'");
  write_attr(c, ds.get(), "dtype", std::string(dtype_name(info.dtype)));
  c.check_status(ds.close_checked(), what, "cannot close dataset");
  m.names.push_back(info.name);
  m.seen.insert(info.name);
}

// read(offset, max_len), checked to keep its contract.
std::span<const uint8_t> pull(const CheckpointWriter::ByteReader& read, uint64_t offset, uint64_t max_len,
                              const std::string& what) {
  const auto view = read(offset, max_len);
  TEMPER_CHECK(!view.empty() && view.size() <= max_len, what, ": reader returned ", view.size(), " bytes at offset ",
               offset, " where 1..", max_len, " were asked for");
  return view;
}

int raw_fd(CheckpointWriter::Impl& m) {
  if (m.raw_fd < 0) {
    m.raw_fd = ::open(m.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (m.raw_fd < 0) m.ctx.fail("/", cat("cannot open for writing: ", std::strerror(errno)));
  }
  return m.raw_fd;
}

uint64_t end_of_allocation(CheckpointWriter::Impl& m) {
  haddr_t eoa = 0;
  m.ctx.check_status(H5Fget_eoa(m.file.get(), &eoa), "/", "cannot read the end of the file's allocation");
  return uint64_t(eoa);
}

// Has the file system allocate the blocks for bytes [from, to) now, in one call (fallocate,
// file size unchanged). Writing into blocks allocated so skips ext4's per-block delayed
// allocation, which was half the cost of writing a checkpoint. Running out of space is an
// error here, before the bytes are copied; a file system without fallocate just goes on.
void reserve_space(CheckpointWriter::Impl& m, uint64_t from, uint64_t to, const std::string& what) {
  if (!m.can_reserve || to <= from) return;
  if (::fallocate(raw_fd(m), FALLOC_FL_KEEP_SIZE, off_t(from), off_t(to - from)) == 0) return;
  if (errno == ENOSPC || errno == EDQUOT)
    m.ctx.fail(what, cat("cannot reserve bytes ", from, "..", to, ": ", std::strerror(errno)));
  m.can_reserve = false;  // EOPNOTSUPP and the like: write without reserving
}

// Copies the tensor's bytes into its early-allocated chunks: each chunk is one contiguous
// range of the tensor (chunk_shape), stored at the address HDF5 reports; padding past the
// tensor's end in the last chunk is zeroed. HDF5 never writes these bytes itself (fill time
// NEVER), so our descriptor and its do not overlap.
void copy_into_chunks(CheckpointWriter::Impl& m, hid_t ds, const TensorInfo& info,
                      const CheckpointWriter::ByteReader& read) {
  const Ctx& c = m.ctx;
  const std::string what = cat("tensor '", info.name, "'");
  const uint64_t numel = info.numel();
  const ChunkShape cs = chunk_shape(info.shape, info.nbytes / numel);
  const size_t d = cs.split_dim;
  const uint64_t chunk_bytes = uint64_t(cs.dims[d]) * cs.split_stride;
  std::vector<hsize_t> coord(info.shape.size(), 0);
  for (uint64_t start = 0; start < info.nbytes;) {
    // Coordinates of the chunk holding byte `start` (dims after d are whole, so 0).
    uint64_t rest = start / cs.split_stride;
    for (size_t i = d + 1; i-- > 0;) {
      coord[i] = hsize_t(rest % uint64_t(info.shape[i]));
      rest /= uint64_t(info.shape[i]);
    }
    unsigned filter_mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t stored = 0;
    c.check_status(H5Dget_chunk_info_by_coord(ds, coord.data(), &filter_mask, &addr, &stored), what,
                   "cannot locate a chunk");
    if (addr == HADDR_UNDEF || stored != chunk_bytes)
      c.fail(what, cat("chunk at byte ", start, " is not allocated as expected (", stored, " of ", chunk_bytes, " bytes)"));
    const uint64_t valid = std::min<uint64_t>(uint64_t(info.shape[d]) - coord[d], cs.dims[d]) * cs.split_stride;
    for (uint64_t off = 0; off < valid;) {
      const auto view = pull(read, start + off, valid - off, what);
      write_all_at(c, raw_fd(m), view.data(), view.size(), addr + off, what);
      off += view.size();
    }
    if (valid < chunk_bytes) {  // the chunk's padding past the tensor's end
      const auto zeros = m.buffer.get(size_t(chunk_bytes - valid));
      std::fill(zeros.begin(), zeros.end(), uint8_t(0));
      write_all_at(c, raw_fd(m), zeros.data(), zeros.size(), addr + valid, what);
    }
    start += valid;
  }
}

}  // namespace

void CheckpointWriter::write_tensor(const TensorInfo& info, std::span<const uint8_t> data) {
  std::lock_guard lock(h5::library_mutex());
  Impl& m = *impl_;
  Id ds = create_tensor_dataset(m, info, data.size(), /*early=*/false);
  if (!data.empty()) {
    Id type = h5::tensor_type(info.dtype);
    m.ctx.check_status(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()),
                       cat("tensor '", info.name, "'"), "cannot write");
  }
  finish_tensor_dataset(m, info, ds);
}

void CheckpointWriter::write_tensor(const TensorInfo& info, const ByteReader& read) {
  Impl& m = *impl_;
  if (m.zstd_level > 0 || info.shape.empty() || info.nbytes == 0) {  // through HDF5's filters: whole
    const auto bytes = m.buffer.get(size_t(info.nbytes));
    for (uint64_t off = 0; off < info.nbytes;) {
      const auto view = pull(read, off, info.nbytes - off, cat("tensor '", info.name, "'"));
      std::memcpy(bytes.data() + off, view.data(), view.size());
      off += view.size();
    }
    write_tensor(info, std::span<const uint8_t>(bytes));
    return;
  }
  std::lock_guard lock(h5::library_mutex());
  const uint64_t allocated = end_of_allocation(m);
  Id ds = create_tensor_dataset(m, info, info.nbytes, /*early=*/true);
  reserve_space(m, allocated, end_of_allocation(m), cat("tensor '", info.name, "'"));
  copy_into_chunks(m, ds.get(), info, read);
  finish_tensor_dataset(m, info, ds);
}

void CheckpointWriter::close() {
  std::lock_guard lock(h5::library_mutex());
  Impl& m = *impl_;
  const Ctx& c = m.ctx;
  if (m.closed) return;
  if (!m.described) c.fail("/", "closed without write_description");
  // Written last: its presence marks a complete checkpoint.
  h5::write_strings(c, m.file.get(), "tensor_names", m.names);
  c.check_status(m.tensors.close_checked(), "/tensors", "cannot close group");
  c.check_status(m.file.close_checked(), "/", "cannot flush and close the file");
  if (m.raw_fd >= 0) {
    const int fd = std::exchange(m.raw_fd, -1);
    if (::close(fd) != 0) c.fail("/", cat("write failed: ", std::strerror(errno)));
  }
  m.closed = true;
}

}  // namespace temper
