// Training checkpoints (see checkpoint.h): written as an adapter file plus a /checkpoint group,
// read back with the HDF5 C API. Integers are i64 attributes, the AdamW moments 2-D f32
// datasets shaped and named like the adapters they belong to, the loss curve 1-D arrays.
#include "train/checkpoint.h"

#include <cmath>
#include <fstream>
#include <mutex>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/sha256.h"
#include "formats/h5_util.h"

namespace temper::train {

namespace {

constexpr int32_t kCheckpointVersion = 2;  // 2: epoch (shuffled example order)

// Options that may change between a run and its resume: where things go and what is shown.
bool may_differ(const std::string& key) {
  return key == "data" || key == "val";  // paths; the files' contents are compared by hash
}

void write_i64(const h5::Ctx& c, hid_t loc, const char* name, int64_t v) {
  h5::write_scalar(c, loc, name, true, H5T_STD_I64LE, &v);
}

int64_t read_i64(const h5::Ctx& c, hid_t loc, const char* name) {
  const std::string what = h5::member_name(loc, name, true);
  if (!h5::attr_exists(loc, name)) c.fail(what, "missing");
  h5::Id a(c.check(H5Aopen(loc, name, H5P_DEFAULT), what, "cannot open"), H5Aclose);
  h5::Id type(c.check(H5Aget_type(a.get()), what, "cannot get type"), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER) c.fail(what, "expected an integer");
  int64_t v = 0;
  c.check_status(H5Aread(a.get(), H5T_NATIVE_INT64, &v), what, "cannot read");
  return v;
}

// A dataset of `n` elements of class `cls` read as `mem`; 2-D datasets must be (rows, cols).
void read_dataset(const h5::Ctx& c, hid_t loc, const std::string& name, H5T_class_t cls, hid_t mem,
                  void* out, std::vector<hsize_t> dims) {
  const std::string what = h5::member_name(loc, name, false);
  if (!h5::link_exists(loc, name.c_str())) c.fail(what, "missing");
  h5::Id ds(c.check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), what, "cannot open"), H5Dclose);
  h5::Id type(c.check(H5Dget_type(ds.get()), what, "cannot get type"), H5Tclose);
  if (H5Tget_class(type.get()) != cls) c.fail(what, "unexpected element type");
  if (h5::filter_count(ds.get()) != 0) c.fail(what, "stored with filters (temper writes it unfiltered)");
  h5::Id space(c.check(H5Dget_space(ds.get()), what, "cannot get dataspace"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > H5S_MAX_RANK) c.fail(what, "cannot read dataspace");
  std::vector<hsize_t> got(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), got.data(), nullptr);
  if (got != dims) {
    std::string want, have;
    for (hsize_t d : dims) want += (want.empty() ? "" : " x ") + std::to_string(d);
    for (hsize_t d : got) have += (have.empty() ? "" : " x ") + std::to_string(d);
    c.fail(what, cat("shape ", have, ", this run's adapters need ", want));
  }
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  if (n > 0)
    c.check_status(H5Dread(ds.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), what, "cannot read");
}

hsize_t read_length(const h5::Ctx& c, hid_t loc, const char* name) {
  const std::string what = h5::member_name(loc, name, false);
  if (!h5::link_exists(loc, name)) c.fail(what, "missing");
  h5::Id ds(c.check(H5Dopen2(loc, name, H5P_DEFAULT), what, "cannot open"), H5Dclose);
  h5::Id space(c.check(H5Dget_space(ds.get()), what, "cannot get dataspace"), H5Sclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) c.fail(what, "expected a 1-D list");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  c.check_fits(what, n, 1);  // before the caller sizes a buffer by it (stored unfiltered)
  return n;
}

template <typename T>
std::vector<T> read_list(const h5::Ctx& c, hid_t loc, const char* name, H5T_class_t cls, hid_t mem) {
  std::vector<T> v(read_length(c, loc, name));
  read_dataset(c, loc, name, cls, mem, v.data(), {hsize_t(v.size())});
  return v;
}

// "--lr: checkpoint 0.001, this run 0.002" for the first training argument that differs.
std::string first_difference(const Json& saved, const Json& now) {
  for (const auto& [key, value] : now.items()) {
    if (may_differ(key)) continue;
    std::string flag = "--" + key;
    for (char& ch : flag) ch = ch == '_' ? '-' : ch;
    if (!saved.contains(key)) return flag + ": not in the checkpoint";
    if (saved[key] != value) return cat(flag, ": checkpoint ", saved[key].dump(), ", this run ", value.dump());
  }
  for (const auto& [key, value] : saved.items())
    if (!may_differ(key) && !now.contains(key)) return cat("--", key, ": only in the checkpoint");
  return "";
}

}  // namespace

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TEMPER_CHECK(in, path, ": cannot open");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h.update(buf.data(), size_t(in.gcount()));
  }
  TEMPER_CHECK(in.eof(), path, ": read error");
  return h.hex_digest();
}

void write_checkpoint(const std::string& path, const LoraModel& model, AdamW& opt,
                      const TrainState& state, const ModelDescription& base,
                      const AdapterProvenance& provenance, const RunIdentity& id) {
  const auto extra = [&](const h5::Ctx& c, int64_t root) {
    h5::Id g = h5::create_group(c, root, "checkpoint", /*track_order=*/true);
    const hid_t gid = g.get();
    h5::write_i32(c, gid, "format_version", kCheckpointVersion);
    write_i64(c, gid, "step", state.step);
    write_i64(c, gid, "epoch", state.epoch);
    write_i64(c, gid, "next_example", state.next_example);
    write_i64(c, gid, "tokens_seen", state.tokens_seen);
    write_i64(c, gid, "threads", state.threads);
    write_i64(c, gid, "adam_step", opt.steps());
    h5::write_string(c, gid, "data_sha256", true, id.data_sha256);
    h5::write_string(c, gid, "training_args", true, id.training_args.dump());
    for (const char* which : {"adam_m", "adam_v"}) {
      const auto& moments = which[5] == 'm' ? opt.first_moments() : opt.second_moments();
      h5::Id mg = h5::create_group(c, gid, which, /*track_order=*/true);
      size_t i = 0;
      for (const LoraPair& p : model.pairs()) {
        h5::write_f32_matrix(c, mg.get(), adapter_dataset_name(p, false), moments[i++].data(),
                         model.config().rank, p.in);
        h5::write_f32_matrix(c, mg.get(), adapter_dataset_name(p, true), moments[i++].data(), p.out,
                         model.config().rank);
      }
      c.check_status(mg.close_checked(), which, "cannot close group");
    }
    const LossCurve& lc = state.curve;
    h5::write_array(c, gid, "curve_step", H5T_STD_I64LE, lc.step.data(), lc.step.size());
    h5::write_array(c, gid, "curve_loss", H5T_IEEE_F64LE, lc.loss.data(), lc.loss.size());
    h5::write_array(c, gid, "curve_val_step", H5T_STD_I64LE, lc.val_step.data(), lc.val_step.size());
    h5::write_array(c, gid, "curve_val_loss", H5T_IEEE_F64LE, lc.val_loss.data(), lc.val_loss.size());
    c.check_status(g.close_checked(), "/checkpoint", "cannot close group");
  };
  write_adapter(path, /*overwrite=*/true, model, base, provenance, extra);
}

void read_checkpoint(const std::string& path, LoraModel& model, AdamW& opt, TrainState& state,
                     const RunIdentity& expected) {
  std::lock_guard lock(h5::library_mutex());
  h5::init_library();
  const h5::Ctx c(path, "rewrite it with scripts/h5_upgrade.py (h5py; only for a file you trust) or start the run afresh");
  TEMPER_CHECK(file_exists(path), "--resume ", escaped(path), ": no such file");
  h5::Id file = h5::open_file(c, path);
  const hid_t root = file.get();
  if (h5::read_string(c, root, "format", true) != "temper-lora" || !h5::link_exists(root, "checkpoint"))
    c.fail("/", "not a temper training checkpoint (no /checkpoint group: an adapter file?)");
  h5::Id g = h5::open_group(c, root, "checkpoint");
  const hid_t gid = g.get();
  const int32_t version = h5::read_i32(c, gid, "format_version");
  if (version > kCheckpointVersion)
    c.fail("/checkpoint", cat("format_version ", version, ": written by a newer temper"));
  if (version < 2)
    c.fail("/checkpoint", cat("format_version ", version, ": written before temper shuffled the examples ",
                              "(no epoch); start the run afresh"));

  // Identity first: refuse before touching the model.
  auto refuse = [&](const std::string& what) {
    fail("--resume ", escaped(path), ": the checkpoint is from another run: ", what);
  };
  const std::string base_cfg = h5::read_string(c, root, "base_config_sha256", true);
  if (base_cfg != expected.base_config_sha256)
    refuse(cat("base model config.json differs (sha256 ", base_cfg.substr(0, 12), "..., this base ",
               expected.base_config_sha256.substr(0, 12), "...)"));
  const std::string base_t = h5::read_string(c, root, "base_tensors_sha256", true);
  if (base_t != expected.base_tensors_sha256)
    refuse(cat("base model weights differ (tensor fingerprint ", base_t.substr(0, 12),
               "..., this base ", expected.base_tensors_sha256.substr(0, 12), "...)"));
  const std::string data_sha = h5::read_string(c, gid, "data_sha256", true);
  if (data_sha != expected.data_sha256)
    refuse(cat("training data differs (sha256 ", data_sha.substr(0, 12), "..., this data ",
               expected.data_sha256.substr(0, 12), "...)"));
  const Json saved =
      parse_json(h5::read_string(c, gid, "training_args", true), path + " /checkpoint training_args");
  if (const std::string d = first_difference(saved, expected.training_args); !d.empty()) refuse(d);

  // Adapters and moments, each checked against this run's shapes.
  h5::Id adapters = h5::open_group(c, root, "adapters");
  h5::Id gm = h5::open_group(c, gid, "adam_m");
  h5::Id gv = h5::open_group(c, gid, "adam_v");
  const hsize_t r = hsize_t(model.config().rank);
  size_t i = 0;
  for (LoraPair& p : model.pairs()) {
    const std::string na = adapter_dataset_name(p, false), nb = adapter_dataset_name(p, true);
    const std::vector<hsize_t> da = {r, hsize_t(p.in)}, db = {hsize_t(p.out), r};
    read_dataset(c, adapters.get(), na, H5T_FLOAT, H5T_NATIVE_FLOAT, p.a.data(), da);
    read_dataset(c, adapters.get(), nb, H5T_FLOAT, H5T_NATIVE_FLOAT, p.b.data(), db);
    read_dataset(c, gm.get(), na, H5T_FLOAT, H5T_NATIVE_FLOAT, opt.first_moments()[i].data(), da);
    read_dataset(c, gv.get(), na, H5T_FLOAT, H5T_NATIVE_FLOAT, opt.second_moments()[i].data(), da);
    ++i;
    read_dataset(c, gm.get(), nb, H5T_FLOAT, H5T_NATIVE_FLOAT, opt.first_moments()[i].data(), db);
    read_dataset(c, gv.get(), nb, H5T_FLOAT, H5T_NATIVE_FLOAT, opt.second_moments()[i].data(), db);
    ++i;
  }
  opt.set_steps(read_i64(c, gid, "adam_step"));
  state.step = read_i64(c, gid, "step");
  state.epoch = read_i64(c, gid, "epoch");
  state.next_example = read_i64(c, gid, "next_example");
  state.tokens_seen = read_i64(c, gid, "tokens_seen");
  state.threads = int(read_i64(c, gid, "threads"));
  LossCurve& lc = state.curve;
  lc.step = read_list<int64_t>(c, gid, "curve_step", H5T_INTEGER, H5T_NATIVE_INT64);
  lc.loss = read_list<double>(c, gid, "curve_loss", H5T_FLOAT, H5T_NATIVE_DOUBLE);
  lc.val_step = read_list<int64_t>(c, gid, "curve_val_step", H5T_INTEGER, H5T_NATIVE_INT64);
  lc.val_loss = read_list<double>(c, gid, "curve_val_loss", H5T_FLOAT, H5T_NATIVE_DOUBLE);
  if (lc.step.size() != lc.loss.size() || lc.val_step.size() != lc.val_loss.size())
    c.fail("/checkpoint", "loss curve arrays differ in length");
  if (state.step < 0 || state.epoch < 0 || state.next_example < 0 || opt.steps() != state.step)
    c.fail("/checkpoint", cat("inconsistent step ", state.step, " / adam_step ", opt.steps()));
}

}  // namespace temper::train
