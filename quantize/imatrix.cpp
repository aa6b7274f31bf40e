#include "imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "formats/gguf.h"

namespace temper {
namespace {

// common/imatrix-loader.cpp common_imatrix_load: W.in_sum2 [n_per_row, n_mat] with
// W.counts [1, n_mat]; value = sum / count, or 1 for an expert that was never used.
Imatrix load_gguf_imatrix(const std::string& path) {
  GgufFile f(path);
  Imatrix im;
  im.file = path;
  for (const char* key : {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"})
    TEMPER_CHECK(f.has(key), path, ": missing imatrix metadata key '", key, "'");
  const auto& datasets = f.get_string_array("imatrix.datasets");
  if (!datasets.empty()) im.dataset = datasets[0];
  im.chunks = f.get_u32("imatrix.chunk_count");
  std::vector<uint8_t> scratch;
  for (const auto& t : f.tensors()) {
    if (!t.name.ends_with(".in_sum2")) continue;
    const std::string weight = t.name.substr(0, t.name.size() - 8);
    const TensorInfo* counts = f.find(weight + ".counts");
    TEMPER_CHECK(counts, path, ": '", escaped(t.name), "' has no matching '", escaped(weight), ".counts'");
    TEMPER_CHECK(t.dtype == DType::kF32 && counts->dtype == DType::kF32, path, ": '", escaped(weight), "' entries must be f32");
    const uint64_t n_mat = counts->numel(), n = t.numel();
    TEMPER_CHECK(n_mat > 0 && n % n_mat == 0, path, ": '", escaped(weight), "': ", n, " sums do not split into ", n_mat, " matrices");
    std::vector<float> sums(n), cnt(n_mat);
    std::memcpy(sums.data(), f.read(t, scratch).data(), n * 4);
    std::memcpy(cnt.data(), f.read(*counts, scratch).data(), n_mat * 4);
    const uint64_t per = n / n_mat;
    for (uint64_t e = 0; e < n_mat; ++e) {
      const long c = std::lround(cnt[e]);
      for (uint64_t j = 0; j < per; ++j) {
        float& v = sums[e * per + j];
        v = c > 0 ? v / float(c) : 1.0f;
        TEMPER_CHECK(std::isfinite(v), path, ": '", escaped(weight), "' has a non-finite value at ", e * per + j);
      }
    }
    im.entries[weight] = std::move(sums);
  }
  TEMPER_CHECK(!im.entries.empty(), path, ": no importance-matrix entries");
  return im;
}

// common_imatrix_load_legacy: int32 n; per entry int32 len, name, int32 ncall, int32 nval,
// float values[nval] (already scaled by ncall); optional trailer with the dataset name.
Imatrix load_legacy_imatrix(const std::string& path) {
  MappedFile f(path);
  uint64_t pos = 0;
  auto i32 = [&](const char* what) {
    int32_t v;
    std::memcpy(&v, f.span(pos, 4, what).data(), 4);
    pos += 4;
    return v;
  };
  Imatrix im;
  im.file = path;
  const int32_t n = i32("entry count");
  TEMPER_CHECK(n > 0 && uint64_t(n) <= f.size() / 16, path, ": implausible entry count ", n);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t len = i32("name length");
    TEMPER_CHECK(len > 0 && len < 4096, path, ": entry ", i, " has a bad name length ", len);
    std::string name(reinterpret_cast<const char*>(f.span(pos, uint64_t(len), "entry name").data()), size_t(len));
    pos += uint64_t(len);
    const int32_t ncall = i32("call count"), nval = i32("value count");
    TEMPER_CHECK(nval > 0, path, ": entry '", escaped(name), "' has ", nval, " values");
    // The span is checked against the file before the vector is sized: a bogus count must not
    // allocate gigabytes first.
    const auto bytes = f.span(pos, uint64_t(nval) * 4, "entry values");
    std::vector<float> v(static_cast<size_t>(nval));
    std::memcpy(v.data(), bytes.data(), bytes.size());
    pos += uint64_t(nval) * 4;
    for (float& x : v) {
      if (ncall > 0) x /= float(ncall);
      TEMPER_CHECK(std::isfinite(x), path, ": entry '", escaped(name), "' has a non-finite value");
    }
    im.entries[name] = std::move(v);
  }
  if (pos + 8 <= f.size()) {
    im.chunks = uint32_t(i32("chunk count"));
    const int32_t len = i32("dataset name length");
    if (len > 0 && pos + uint64_t(len) <= f.size())
      im.dataset.assign(reinterpret_cast<const char*>(f.data() + pos), size_t(len));
  }
  return im;
}

}  // namespace

void write_imatrix_gguf(const ImatrixData& d, const std::string& path, bool overwrite,
                        const std::vector<std::string>& inputs) {
  AtomicOutput out(path, overwrite, inputs);
  GgufWriter w(out);
  w.add_string("general.type", "imatrix");
  w.add_string_array("imatrix.datasets", d.datasets);
  w.add_u32("imatrix.chunk_count", d.chunks);
  w.add_u32("imatrix.chunk_size", d.chunk_size);
  for (const auto& [name, e] : d.entries) {
    const int64_t n_mat = int64_t(e.counts.size()), ne0 = int64_t(e.sums.size()) / n_mat;
    // ggml stores as many dimensions as ggml_n_dims counts: trailing 1s are dropped.
    const int64_t sums_ne[2] = {ne0, n_mat}, counts_ne[2] = {1, n_mat};
    const size_t dims = n_mat > 1 ? 2 : 1;
    w.add_tensor_ne(name + ".in_sum2", DType::kF32, std::span(sums_ne, dims));
    w.add_tensor_ne(name + ".counts", DType::kF32, std::span(counts_ne, dims));
  }
  w.write_header();
  for (const auto& [name, e] : d.entries) {
    w.write_tensor_data(name + ".in_sum2", {reinterpret_cast<const uint8_t*>(e.sums.data()), e.sums.size() * 4});
    std::vector<float> c(e.counts.begin(), e.counts.end());
    w.write_tensor_data(name + ".counts", {reinterpret_cast<const uint8_t*>(c.data()), c.size() * 4});
  }
  w.finish();
}

void write_imatrix_dat(const ImatrixData& d, const std::string& path, bool overwrite,
                       const std::vector<std::string>& inputs) {
  std::string bytes;
  auto put = [&](const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); };
  auto put32 = [&](int32_t v) { put(&v, 4); };
  auto max_count = [](const ImatrixSums& e) { return *std::max_element(e.counts.begin(), e.counts.end()); };
  // Entries with no data are left out, as llama-imatrix does.
  put32(int32_t(std::count_if(d.entries.begin(), d.entries.end(), [&](const auto& kv) { return max_count(kv.second) > 0; })));
  for (const auto& [name, e] : d.entries) {
    if (max_count(e) == 0) continue;
    put32(int32_t(name.size()));
    put(name.data(), name.size());
    const int32_t ncall = int32_t((max_count(e) + (d.chunk_size - 1)) / d.chunk_size);
    put32(ncall);
    put32(int32_t(e.sums.size()));
    const size_t per = e.sums.size() / e.counts.size();
    for (size_t i = 0; i < e.sums.size(); ++i) {
      float count = float(e.counts[i / per]), value = e.sums[i];
      if (count == 0.0f) value = count = 1.0f;
      const float v = (value / count) * float(ncall);
      put(&v, 4);
    }
  }
  put32(int32_t(d.chunks));
  const std::string dataset = d.datasets.empty() ? "" : d.datasets.back();
  put32(int32_t(dataset.size()));
  put(dataset.data(), dataset.size());
  AtomicOutput out(path, overwrite, inputs);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

Imatrix load_imatrix(const std::string& path) {
  MappedFile probe(path);
  const bool gguf = probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0;
  return gguf ? load_gguf_imatrix(path) : load_legacy_imatrix(path);
}

}  // namespace temper
