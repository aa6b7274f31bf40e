// CheckpointReader: opens a checkpoint read-only, validates the format, reads the description
// and the tensor directory; tensors are read on demand, in their stored type, without conversion.
#include <type_traits>
#include <unordered_map>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "formats/checkpoint.h"
#include "formats/checkpoint_schema.h"
#include "formats/h5_util.h"
#include "formats/h5_zstd_filter.h"

namespace temper {
namespace {

using h5::Ctx;
using h5::Id;

template <typename E>
E enum_from_name(const Ctx& c, std::string_view what, std::string_view s) {
  std::string allowed;
  for (const auto& [value, name] : ckpt::enum_names(E{})) {
    if (name == s) return value;
    allowed += cat(allowed.empty() ? "" : ", ", name);
  }
  c.fail(what, cat("unknown value '", escaped(s), "' (expected one of: ", allowed, ")"));
}

template <typename T>
void read_attr(const Ctx& c, hid_t obj, const char* name, T& out) {
  if constexpr (std::is_same_v<T, std::string>) {
    out = h5::read_string(c, obj, name, true);
  } else if constexpr (std::is_same_v<T, bool>) {
    out = h5::read_bool(c, obj, name);
  } else if constexpr (std::is_same_v<T, float>) {
    out = h5::read_f32(c, obj, name);
  } else if constexpr (std::is_same_v<T, int>) {
    out = h5::read_i32(c, obj, name);
  } else {
    static_assert(std::is_enum_v<T>, "no HDF5 mapping for this field type");
    out = enum_from_name<T>(c, h5::member_name(obj, name, true), h5::read_string(c, obj, name, true));
  }
}

template <typename S>
struct AttrReader {
  const Ctx& c;
  hid_t obj;
  S& s;
  template <typename T>
  void operator()(const char* name, T S::*m) const { read_attr(c, obj, name, s.*m); }
};

// A 1-D dataset of length n_layer -> one LayerConfig member of every layer.
struct ColumnReader {
  const Ctx& c;
  hid_t group;
  std::vector<LayerConfig>& layers;

  void check_len(const char* name, size_t n) const {
    if (n != layers.size())
      c.fail(h5::member_name(group, name, false), cat("has ", n, " entries, expected n_layer = ", layers.size()));
  }
  template <typename T>
  void operator()(const char* name, T LayerConfig::*m) const {
    if constexpr (std::is_enum_v<T>) {
      auto col = h5::read_strings(c, group, name);
      check_len(name, col.size());
      for (size_t i = 0; i < col.size(); ++i) layers[i].*m = enum_from_name<T>(c, h5::member_name(group, name, false), col[i]);
    } else if constexpr (std::is_same_v<T, bool>) {
      auto col = h5::read_bools(c, group, name);
      check_len(name, col.size());
      for (size_t i = 0; i < col.size(); ++i) layers[i].*m = col[i] != 0;
    } else if constexpr (std::is_same_v<T, float>) {
      auto col = h5::read_f32s(c, group, name);
      check_len(name, col.size());
      for (size_t i = 0; i < col.size(); ++i) layers[i].*m = col[i];
    } else {
      static_assert(std::is_same_v<T, int>);
      auto col = h5::read_i32s(c, group, name);
      check_len(name, col.size());
      for (size_t i = 0; i < col.size(); ++i) layers[i].*m = col[i];
    }
  }
};

// A ragged per-layer list: `name` holds the layers' values concatenated, `name`_count how many
// belong to each layer.
void read_ragged(const Ctx& c, hid_t lg, const ColumnReader& columns, const std::string& name,
                 std::vector<float> LayerConfig::*member) {
  auto values = h5::read_f32s(c, lg, name.c_str());
  const std::string count_name = name + "_count";
  auto counts = h5::read_i32s(c, lg, count_name.c_str());
  columns.check_len(count_name.c_str(), counts.size());
  size_t at = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] < 0 || uint64_t(counts[i]) > values.size() - at)
      c.fail("/config/layers/" + count_name,
             cat("layer ", i, " count ", counts[i], " overruns the ", values.size(), " stored values"));
    columns.layers[i].*member = std::vector<float>(values.begin() + at, values.begin() + at + counts[i]);
    at += size_t(counts[i]);
  }
  if (at != values.size())
    c.fail("/config/layers/" + name, cat("has ", values.size(), " values but the counts sum to ", at));
}

void read_config(const Ctx& c, hid_t root, ModelDescription& d) {
  ModelConfig& cfg = d.config;
  Id g = h5::open_group(c, root, "config");
  ckpt::visit_model_fields(AttrReader<ModelConfig>{c, g.get(), cfg});
  d.config_json = h5::read_string(c, g.get(), "config_json", false);
  d.generation_config_json = h5::read_string(c, g.get(), "generation_config_json", false);
  if (cfg.n_layer < 0) c.fail("/config attribute 'n_layer'", cat("negative value ", cfg.n_layer));
  Id lg = h5::open_group(c, g.get(), "layers");
  cfg.layers.assign(size_t(cfg.n_layer), LayerConfig{});
  ColumnReader columns{c, lg.get(), cfg.layers};
  ckpt::visit_layer_fields(columns);
  read_ragged(c, lg.get(), columns, "rope_freq_factors", &LayerConfig::rope_freq_factors);
  // LongRoPE: written only by checkpoints that use it.
  if (!h5::link_exists(lg.get(), "rope_freq_factors_long")) return;
  read_ragged(c, lg.get(), columns, "rope_freq_factors_long", &LayerConfig::rope_freq_factors_long);
  columns("rope_long_after", &LayerConfig::rope_long_after);
  columns("rope_attn_factor", &LayerConfig::rope_attn_factor);
}

void read_tokenizer(const Ctx& c, hid_t root, TokenizerAssets& t) {
  Id g = h5::open_group(c, root, "tokenizer");
  ckpt::visit_tokenizer_fields(AttrReader<TokenizerAssets>{c, g.get(), t});
  t.tokens = h5::read_strings(c, g.get(), "tokens");
  t.scores = h5::read_f32s(c, g.get(), "scores");
  t.token_types = h5::read_i32s(c, g.get(), "token_types");
  t.merges = h5::read_strings(c, g.get(), "merges");
  t.eog_ids = h5::read_i32s(c, g.get(), "eog_ids");
  if (!t.scores.empty() && t.scores.size() != t.tokens.size())
    c.fail("/tokenizer/scores", cat("has ", t.scores.size(), " entries for ", t.tokens.size(), " tokens"));
  if (!t.token_types.empty() && t.token_types.size() != t.tokens.size())
    c.fail("/tokenizer/token_types", cat("has ", t.token_types.size(), " entries for ", t.tokens.size(), " tokens"));
  ckpt::visit_tokenizer_files([&](const char* name, std::string TokenizerAssets::*m) {
    if (!h5::link_exists(g.get(), name)) return;  // absent = the file did not exist
    auto bytes = h5::read_u8s(c, g.get(), name);
    (t.*m).assign(bytes.begin(), bytes.end());
  });
}

void read_provenance(const Ctx& c, hid_t root, Provenance& p) {
  Id g = h5::open_group(c, root, "provenance");
  read_attr(c, g.get(), "source", p.source);
  read_attr(c, g.get(), "config_sha256", p.config_sha256);
  read_attr(c, g.get(), "converter", p.converter);
  read_attr(c, g.get(), "created_utc", p.created_utc);
  p.files = h5::read_strings(c, g.get(), "files");
}

bool uses_zstd(hid_t ds) {
  Id dcpl(H5Dget_create_plist(ds), H5Pclose);
  unsigned flags = 0;
  size_t nelem = 0;
  const bool found = dcpl.valid() && H5Pget_filter_by_id2(dcpl.get(), TEMPER_H5Z_FILTER_ZSTD, &flags, &nelem, nullptr,
                                                          0, nullptr, nullptr) >= 0;
  H5Eclear2(H5E_DEFAULT);  // "not found" is an answer here, not an error to report later
  return found;
}

}  // namespace

struct CheckpointReader::Impl {
  Ctx ctx;
  Id file, tensors_group;
  int version = 0;
  bool compressed = false;
  ModelDescription desc;
  std::vector<TensorInfo> infos;
  std::unordered_map<std::string, size_t> index;
  explicit Impl(const std::string& path)
      : ctx(path, "re-run temper convert on the model's safetensors to write it again") {}

  TensorInfo describe_tensor(const std::string& name);
  void check_storage(hid_t ds, const TensorInfo& info, const std::string& what) const;
};

// Before anything is sized by the tensor's shape: its bytes must be in the file. Unfiltered,
// they are stored as they are, so they fit in it; filtered (zstd), every chunk must be stored
// (HDF5 would fill missing ones with zeros, so a few bytes of index could stand for any size).
void CheckpointReader::Impl::check_storage(hid_t ds, const TensorInfo& info, const std::string& what) const {
  const Ctx& c = ctx;
  Id dcpl(c.check(H5Dget_create_plist(ds), what, "cannot get creation properties"), H5Pclose);
  const int n_filters = H5Pget_nfilters(dcpl.get());
  if (n_filters < 0) c.fail(what, "cannot read the filter list");
  if (n_filters == 0) {
    c.check_fits(what, info.nbytes, 1);
    return;
  }
  // Only the filters temper writes: HDF5's other decoders (n-bit, scale-offset, szip...) are not
  // offered to the file.
  for (int i = 0; i < n_filters; ++i) {
    unsigned flags = 0;
    size_t n_values = 0;
    const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), unsigned(i), &flags, &n_values, nullptr, 0, nullptr, nullptr);
    if (id != H5Z_FILTER_SHUFFLE && id != TEMPER_H5Z_FILTER_ZSTD)
      c.fail(what, cat("filter ", int(id), " is not one temper writes (shuffle, zstd)"));
  }
  if (info.nbytes == 0) return;
  const int rank = H5Pget_chunk(dcpl.get(), 0, nullptr);
  if (rank != int(info.shape.size())) c.fail(what, "filtered but not chunked like its shape");
  std::vector<hsize_t> chunk(static_cast<size_t>(rank));
  H5Pget_chunk(dcpl.get(), rank, chunk.data());
  uint64_t expected = 1;
  for (int d = 0; d < rank; ++d) {
    if (chunk[size_t(d)] == 0) c.fail(what, "chunk dimension 0");
    expected *= (uint64_t(info.shape[size_t(d)]) + chunk[size_t(d)] - 1) / chunk[size_t(d)];
  }
  c.check_fits(what, expected, 1);  // at least one stored byte per chunk
  Id space(c.check(H5Dget_space(ds), what, "cannot get dataspace"), H5Sclose);
  hsize_t stored = 0;
  c.check_status(H5Dget_num_chunks(ds, space.get(), &stored), what, "cannot count its chunks");
  if (stored != expected) c.fail(what, cat(stored, " of its ", expected, " chunks are stored"));
}

TensorInfo CheckpointReader::Impl::describe_tensor(const std::string& name) {
  const Ctx& c = ctx;
  const std::string what = cat("/tensors/", name);
  if (!h5::link_exists(tensors_group.get(), name.c_str())) c.fail(what, "listed in /tensor_names but missing");
  Id ds(c.check(H5Dopen2(tensors_group.get(), name.c_str(), H5P_DEFAULT), what, "cannot open dataset"), H5Dclose);
  TensorInfo info;
  info.name = name;
  const std::string dtype_attr = h5::read_string(c, ds.get(), "dtype", true);
  auto dt = dtype_from_name(dtype_attr);
  if (!dt) c.fail(what, cat("unknown dtype '", escaped(dtype_attr), "'"));
  info.dtype = *dt;
  Id expected = h5::tensor_type(info.dtype);
  if (!expected.valid()) c.fail(what, cat("dtype '", dtype_attr, "' cannot be stored in a checkpoint"));
  Id type(c.check(H5Dget_type(ds.get()), what, "cannot get type"), H5Tclose);
  if (H5Tequal(type.get(), expected.get()) <= 0)
    c.fail(what, cat("stored HDF5 type does not match dtype '", dtype_attr, "'"));
  Id space(c.check(H5Dget_space(ds.get()), what, "cannot get dataspace"), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > H5S_MAX_RANK) c.fail(what, "cannot read dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) c.fail(what, "cannot read dims");
  for (hsize_t d : dims) {
    if (d > uint64_t(INT64_MAX)) c.fail(what, "dimension out of range");
    info.shape.push_back(int64_t(d));
  }
  info.nbytes = dtype_bytes(info.dtype, checked_numel(info.shape, what));
  if (uses_zstd(ds.get())) compressed = true;
  check_storage(ds.get(), info, what);
  return info;
}

CheckpointReader::CheckpointReader(const std::string& path, CheckpointCheck check)
    : impl_(std::make_unique<Impl>(path)) {
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  Impl& m = *impl_;
  const Ctx& c = m.ctx;
  if (!file_exists(path)) fail("checkpoint ", path, ": no such file");
  m.file = h5::open_file(c, path);
  hid_t root = m.file.get();

  if (!h5::attr_exists(root, "format")) c.fail("/", "not a temper checkpoint (no 'format' attribute)");
  const std::string format = h5::read_string(c, root, "format", true);
  if (format != "temper-checkpoint") c.fail("/", cat("not a temper checkpoint (format is '", escaped(format), "')"));
  m.version = h5::read_i32(c, root, "format_version");
  if (m.version > kCheckpointFormatVersion)
    c.fail("/", cat("format_version ", m.version, " was written by a newer temper; this build reads up to ",
                    kCheckpointFormatVersion));
  if (m.version < kCheckpointFormatVersion)
    c.fail("/", cat("format_version ", m.version, " (strings stored in HDF5's unchecked global heap) is no longer ",
                    "read: ", c.remedy()));

  ModelDescription& d = m.desc;
  read_config(c, root, d);
  read_tokenizer(c, root, d.tokenizer);
  d.chat_template = h5::read_string(c, root, "chat_template", false);
  read_provenance(c, root, d.provenance);
  const std::string arch_id = h5::read_string(c, root, "arch", true);
  if (arch_id != d.config.arch)
    c.fail("/ attribute 'arch'", cat("'", escaped(arch_id), "' differs from /config arch '", escaped(d.config.arch), "'"));
  d.arch = find_arch_by_id(arch_id);
  if (!d.arch) c.fail("/ attribute 'arch'", cat("architecture '", escaped(arch_id), "' is not supported by this build"));

  m.tensors_group = h5::open_group(c, root, "tensors");
  if (!h5::link_exists(root, "tensor_names"))
    c.fail("/tensor_names", "missing: the checkpoint is incomplete (its writer did not finish)");
  for (std::string& name : h5::read_strings(c, root, "tensor_names")) {
    if (!m.index.emplace(name, m.infos.size()).second) c.fail("/tensor_names", cat("lists '", escaped(name), "' twice"));
    m.infos.push_back(m.describe_tensor(name));
  }
  H5G_info_t ginfo;
  c.check_status(H5Gget_info(m.tensors_group.get(), &ginfo), "/tensors", "cannot read group info");
  if (ginfo.nlinks != m.infos.size())
    c.fail("/tensors", cat("holds ", ginfo.nlinks, " objects but /tensor_names lists ", m.infos.size()));
  // The checks convert made, made again: the file may not come from convert (or be intact), and
  // every reader (quantize, eval, inspect...) relies on a config and shapes that agree.
  if (check == CheckpointCheck::kLayoutOnly) return;
  try {
    validate_model(d, m.infos);
  } catch (const Error& e) {
    c.fail("/", e.what());
  }
}

CheckpointReader::~CheckpointReader() {
  std::lock_guard lock(h5::library_mutex());
  impl_->tensors_group.reset();
  impl_->file.reset();
  H5Eclear2(H5E_DEFAULT);
}

const std::vector<TensorInfo>& CheckpointReader::tensors() const { return impl_->infos; }
const ModelDescription& CheckpointReader::description() const { return impl_->desc; }
int CheckpointReader::format_version() const { return impl_->version; }
bool CheckpointReader::compressed() const { return impl_->compressed; }

std::span<const uint8_t> CheckpointReader::read(const TensorInfo& t, std::vector<uint8_t>& scratch) const {
  std::lock_guard lock(h5::library_mutex());
  const Impl& m = *impl_;
  const Ctx& c = m.ctx;
  const std::string what = cat("/tensors/", t.name);
  auto it = m.index.find(t.name);
  if (it == m.index.end()) c.fail(what, "no such tensor");
  const TensorInfo& own = m.infos[it->second];
  if (own.dtype != t.dtype || own.shape != t.shape)
    c.fail(what, cat("asked for ", dtype_name(t.dtype), " ", shape_str(t.shape), " but it is ", dtype_name(own.dtype),
                     " ", shape_str(own.shape)));
  scratch.resize(own.nbytes);
  if (own.nbytes == 0) return {};
  Id ds(c.check(H5Dopen2(m.tensors_group.get(), t.name.c_str(), H5P_DEFAULT), what, "cannot open dataset"), H5Dclose);
  // The stored type as the memory type: HDF5 copies the bytes without any conversion.
  Id type(c.check(H5Dget_type(ds.get()), what, "cannot get type"), H5Tclose);
  c.check_status(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, scratch.data()), what,
                 "cannot read (corrupt data, or a filter this build lacks)");
  return {scratch.data(), own.nbytes};
}

}  // namespace temper
