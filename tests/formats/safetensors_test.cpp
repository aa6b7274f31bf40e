// SafetensorsModel: the real stories260K fixtures (single file in three dtypes, sharded folder)
// checked against an independent numpy parse, and a catalog of hostile files and folders.
#include "formats/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "core/sha256.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::TempDir;

std::string model_dir(const std::string& variant) { return test::fixture("model/stories260K-hf-" + variant); }

// ---- independent reference: numpy reads the same files --------------------------------------

struct PyTensor {
  std::string dtype, shape, sha256;
  std::vector<double> head;  // first values, decoded by numpy
};

// name -> facts, plus the names in data-offset order (one list per file, files in order given).
struct PyDump {
  std::map<std::string, PyTensor> tensors;
  std::vector<std::string> order;
};

constexpr const char* kPyDump = R"(
import sys, json, struct, hashlib, numpy as np
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop('__metadata__', None)
    data = raw[8 + n:]
    for name, e in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
        b, end = e['data_offsets']
        buf = data[b:end]
        if e['dtype'] == 'F32': v = np.frombuffer(buf, '<f4')
        elif e['dtype'] == 'F16': v = np.frombuffer(buf, '<f2').astype(np.float32)
        else: v = (np.frombuffer(buf, '<u2').astype(np.uint32) << 16).view(np.float32)
        head = ','.join(repr(float(x)) for x in v[:4])
        print(name, e['dtype'], ','.join(map(str, e['shape'])), hashlib.sha256(buf).hexdigest(), head, sep='\t')
)";

PyDump numpy_dump(const std::vector<std::string>& files) {
  TempDir tmp;
  test::write_file(tmp / "dump.py", kPyDump);
  std::string cmd = std::string(TEMPER_PYTHON) + " " + (tmp / "dump.py");
  for (const auto& f : files) cmd += " '" + f + "'";
  const auto r = test::run_shell(cmd);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  PyDump d;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream f(line);
    std::string name, head;
    PyTensor t;
    std::getline(f, name, '\t');
    std::getline(f, t.dtype, '\t');
    std::getline(f, t.shape, '\t');
    std::getline(f, t.sha256, '\t');
    std::getline(f, head);
    std::istringstream hs(head);
    for (std::string v; std::getline(hs, v, ',');) t.head.push_back(std::stod(v));
    d.order.push_back(name);
    d.tensors[name] = t;
  }
  return d;
}

std::string st_dtype(DType t) {
  return t == DType::kF32 ? "F32" : t == DType::kF16 ? "F16" : t == DType::kBF16 ? "BF16" : "?";
}

std::string shape_csv(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s;
}

double element(std::span<const uint8_t> bytes, DType t, size_t i) {
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, bytes.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, bytes.data() + 2 * i, 2);
  return t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

std::string sha_of(std::span<const uint8_t> b) {
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

// Every tensor's name, order, dtype, shape and bytes agree with numpy; so do the first values.
void expect_matches_numpy(const SafetensorsModel& m, const PyDump& py) {
  ASSERT_EQ(m.tensors().size(), py.order.size());
  std::vector<uint8_t> scratch;
  for (size_t i = 0; i < py.order.size(); ++i) {
    const TensorInfo& t = m.tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, py.order[i]);  // data-offset order within each shard, shards in order
    const PyTensor& p = py.tensors.at(t.name);
    EXPECT_EQ(st_dtype(t.dtype), p.dtype);
    EXPECT_EQ(shape_csv(t.shape), p.shape);
    auto bytes = m.read(t, scratch);
    EXPECT_TRUE(scratch.empty());  // zero-copy: a view of the mapping
    EXPECT_EQ(bytes.size(), t.nbytes);
    EXPECT_EQ(sha_of(bytes), p.sha256);
    for (size_t k = 0; k < p.head.size(); ++k) EXPECT_EQ(element(bytes, t.dtype, k), p.head[k]) << k;  // exact
  }
}

TEST(SafetensorsFixtures, SingleFilesMatchNumpy) {
  for (const char* variant : {"f32", "bf16", "f16"}) {
    SCOPED_TRACE(variant);
    const std::string dir = model_dir(variant);
    auto m = SafetensorsModel::open(dir);
    EXPECT_EQ(m->root(), dir);
    EXPECT_EQ(m->shard_files(), std::vector<std::string>{"model.safetensors"});
    EXPECT_EQ(m->metadata().at("format"), "pt");
    EXPECT_EQ(m->tensors().size(), 47u);  // embed + 5 layers x 9 + final norm (tied lm_head)
    const TensorInfo* embed = m->find("model.embed_tokens.weight");
    ASSERT_NE(embed, nullptr);
    EXPECT_EQ(embed->shape, (std::vector<int64_t>{512, 64}));
    EXPECT_EQ(m->find("model.layers.4.mlp.down_proj.weight")->shape, (std::vector<int64_t>{64, 172}));
    EXPECT_EQ(m->find("lm_head.weight"), nullptr);
    uint64_t sum = 0;
    for (const auto& t : m->tensors()) sum += t.nbytes;
    EXPECT_EQ(m->total_bytes(), sum);
    expect_matches_numpy(*m, numpy_dump({dir + "/model.safetensors"}));
  }
}

// bf16/f16 files are roundings of the f32 one (round to nearest: relative error <= 2^-8 for
// bf16's 8-bit significand, 2^-11 for f16 normals; 2^-24 absolute covers f16 subnormals).
TEST(SafetensorsFixtures, HalfVariantsRoundTheF32Values) {
  auto f32 = SafetensorsModel::open(model_dir("f32") + "/model.safetensors");
  for (auto [variant, rel] : {std::pair{"bf16", 0x1p-8}, std::pair{"f16", 0x1p-11}}) {
    auto half = SafetensorsModel::open(model_dir(variant));
    std::vector<uint8_t> scratch;
    for (const auto& t : f32->tensors()) {
      const TensorInfo* h = half->find(t.name);
      ASSERT_NE(h, nullptr) << t.name;
      ASSERT_EQ(h->shape, t.shape);
      auto a = f32->read(t, scratch), b = half->read(*h, scratch);
      for (uint64_t i = 0; i < t.numel(); ++i) {
        const double x = element(a, DType::kF32, i), y = element(b, h->dtype, i);
        ASSERT_LE(std::abs(x - y), rel * std::abs(x) + 0x1p-24) << variant << " " << t.name << "[" << i << "]";
      }
    }
  }
}

TEST(SafetensorsFixtures, ShardedFolderFollowsTheIndex) {
  const std::string dir = model_dir("f32-sharded-untied");
  auto m = SafetensorsModel::open(dir);
  const std::vector<std::string> shards = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  EXPECT_EQ(m->shard_files(), shards);
  expect_matches_numpy(*m, numpy_dump({dir + "/" + shards[0], dir + "/" + shards[1]}));

  // The same tensors as the single f32 file plus lm_head.weight, with identical bytes.
  auto single = SafetensorsModel::open(model_dir("f32"));
  std::set<std::string> names, single_names;
  for (const auto& t : m->tensors()) names.insert(t.name);
  for (const auto& t : single->tensors()) single_names.insert(t.name);
  single_names.insert("lm_head.weight");
  EXPECT_EQ(names, single_names);
  EXPECT_EQ(m->find("lm_head.weight")->shape, (std::vector<int64_t>{512, 64}));
  std::vector<uint8_t> s1, s2;
  for (const auto& t : single->tensors()) {
    auto a = single->read(t, s1), b = m->read(*m->find(t.name), s2);
    ASSERT_EQ(a.size(), b.size()) << t.name;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << t.name;
  }
  // The index file itself is accepted too.
  EXPECT_EQ(SafetensorsModel::open(dir + "/model.safetensors.index.json")->tensors().size(), m->tensors().size());
}

// ---- hand-made files ---------------------------------------------------------------------------

Json entry(const std::string& dtype, const Json& shape, uint64_t begin, uint64_t end) {
  return Json{{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

void write_st(const std::string& path, const Json& header, size_t data_bytes) {
  test::write_file(path, test::safetensors_bytes(header.dump(), std::string(data_bytes, '\0')));
}

// open(path) throws an Error whose message starts with `file` and contains every part.
void expect_error(const std::string& path, const std::string& file, std::initializer_list<std::string> parts) {
  try {
    SafetensorsModel::open(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(file, 0), 0u) << "message does not start with " << file << ": " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

void expect_bad_header(const std::string& header, size_t data_bytes, std::initializer_list<std::string> parts) {
  TempDir d;
  const std::string f = d / "bad.safetensors";
  test::write_file(f, test::safetensors_bytes(header, std::string(data_bytes, '\0')));
  expect_error(f, f, parts);
}
void expect_bad(const Json& header, size_t data_bytes, std::initializer_list<std::string> parts) {
  expect_bad_header(header.dump(), data_bytes, parts);
}

TEST(SafetensorsBadFile, TruncatedAndBadHeaderLength) {
  TempDir d;
  test::write_file(d / "short.safetensors", std::string("\x05\0\0\0\0", 5));
  expect_error(d / "short.safetensors", d / "short.safetensors", {"5 bytes", "too short"});
  // Claims a 1000-byte header; the file has 12 bytes.
  test::write_file(d / "past.safetensors", test::safetensors_bytes(std::string(1000, ' '), "").substr(0, 8) + "{}  ");
  expect_error(d / "past.safetensors", d / "past.safetensors", {"header length 1000", "past the end", "12 bytes"});
  std::string huge(8, '\0');
  huge[5] = 1;  // 2^40
  test::write_file(d / "huge.safetensors", huge + "{}");
  expect_error(d / "huge.safetensors", d / "huge.safetensors", {"header length 1099511627776", "limit"});
}

TEST(SafetensorsBadFile, HeaderNotAJsonObject) {
  expect_bad_header("{not json", 0, {"not valid JSON"});
  expect_bad_header(std::string(10000, '[') + std::string(10000, ']'), 0, {"nested deeper"});
  expect_bad_header("[1, 2]", 0, {"not a JSON object"});
  expect_bad(Json{{"w", 3}}, 0, {"tensor 'w'", "not an object"});
}

TEST(SafetensorsBadFile, EntryFieldsChecked) {
  expect_bad(Json{{"w", {{"dtype", "F32"}, {"shape", {1}}}}}, 4, {"tensor 'w'", "no 'data_offsets'"});
  expect_bad(Json{{"w", entry("F32", 4, 0, 4)}}, 4, {"tensor 'w'", "shape is not an array"});
  expect_bad(Json{{"w", entry("F32", {1.5}, 0, 4)}}, 4, {"tensor 'w'", "non-integer"});
  expect_bad(Json{{"w", entry("F32", {-1, 4}, 0, 4)}}, 4, {"tensor 'w'", "negative dimension"});
  expect_bad(Json{{"w", entry("F32", {1ull << 40, 1ull << 40}, 0, 4)}}, 4, {"tensor 'w'", "overflows"});
  // numel fits in int64 but its F32 byte count does not fit in uint64.
  expect_bad(Json{{"w", entry("F32", {1ull << 31, 1ull << 31, 4}, 0, 4)}}, 4, {"tensor 'w'", "overflows"});
  Json no_dtype_string = entry("F32", {1}, 0, 4);
  no_dtype_string["dtype"] = 32;
  expect_bad(Json{{"w", no_dtype_string}}, 4, {"tensor 'w'", "dtype is not a string"});
  Json three_offsets = entry("F32", {1}, 0, 4);
  three_offsets["data_offsets"] = {0, 4, 8};
  expect_bad(Json{{"w", three_offsets}}, 8, {"tensor 'w'", "[begin, end]"});
  Json negative_offset = entry("F32", {1}, 0, 4);
  negative_offset["data_offsets"] = {-4, 0};
  expect_bad(Json{{"w", negative_offset}}, 8, {"tensor 'w'", "data_offsets[0]", "non-negative"});
}

TEST(SafetensorsBadFile, DtypesOutsideF32F16BF16) {
  for (const char* dt : {"I8", "F8_E4M3", "F64", "U8", "BOOL"})
    expect_bad(Json{{"x", entry(dt, {4}, 0, 4)}}, 4,
               {std::string("unsupported dtype '") + dt + "' for tensor 'x'", "(temper reads F32, F16, BF16)"});
  expect_bad(Json{{"x", entry("F17", {4}, 0, 4)}}, 4, {"unknown dtype 'F17' for tensor 'x'"});
}

TEST(SafetensorsBadFile, OffsetsOutOfRangeOverlappingOrWrongSize) {
  expect_bad(Json{{"w", entry("F32", {4}, 0, 16)}}, 8, {"tensor 'w'", "past the end of the data section (8 bytes)"});
  expect_bad(Json{{"w", entry("F32", {0}, 8, 4)}}, 8, {"tensor 'w'", "end before they begin"});
  expect_bad(Json{{"a", entry("F32", {4}, 0, 16)}, {"b", entry("F32", {4}, 8, 24)}}, 24,
             {"tensor 'b'", "overlaps tensor 'a'"});
  expect_bad(Json{{"w", entry("F32", {2, 2}, 0, 12)}}, 16, {"tensor 'w'", "hold 12 bytes", "needs 16"});
  expect_bad(Json{{"w", entry("BF16", {3}, 0, 12)}}, 12, {"tensor 'w'", "needs 6"});
}

TEST(SafetensorsBadFile, MetadataMustBeStrings) {
  expect_bad(Json{{"__metadata__", {{"format", 1}}}}, 0, {"__metadata__ key 'format'", "not a string"});
  expect_bad(Json{{"__metadata__", "pt"}}, 0, {"__metadata__ is not an object"});
}

// Unaligned data (header of odd length), an empty tensor, a scalar and a gap are all fine.
TEST(SafetensorsGoodFile, EdgeCasesReadExactly) {
  TempDir d;
  Json h = {{"__metadata__", {{"format", "pt"}, {"note", "x"}}},
            {"scalar", entry("F32", Json::array(), 0, 4)},
            {"empty", entry("F16", {0, 7}, 4, 4)},
            {"after_gap", entry("BF16", {3}, 10, 16)}};
  std::string header = h.dump() + " ";  // trailing space, as some writers pad
  if (header.size() % 2 == 0) header += " ";
  // f32 1.0, a 6-byte gap, bf16 1.0 2.0 3.0 (all little-endian).
  const uint8_t raw[16] = {0, 0, 0x80, 0x3f, '?', '?', '?', '?', '?', '?', 0x80, 0x3f, 0, 0x40, 0x40, 0x40};
  const std::string data(reinterpret_cast<const char*>(raw), sizeof raw);
  test::write_file(d / "edge.safetensors", test::safetensors_bytes(header, data));
  auto m = SafetensorsModel::open(d / "edge.safetensors");
  ASSERT_EQ(m->tensors().size(), 3u);
  EXPECT_EQ(m->tensors()[0].name, "scalar");  // file order
  EXPECT_EQ(m->tensors()[1].name, "empty");
  EXPECT_EQ(m->tensors()[2].name, "after_gap");
  EXPECT_EQ(m->metadata().at("note"), "x");
  EXPECT_EQ(m->total_bytes(), 10u);
  std::vector<uint8_t> scratch;
  EXPECT_EQ(element(m->read(m->tensors()[0], scratch), DType::kF32, 0), 1.0);
  EXPECT_EQ(m->read(m->tensors()[1], scratch).size(), 0u);
  auto bf = m->read(m->tensors()[2], scratch);
  EXPECT_EQ(element(bf, DType::kBF16, 0), 1.0);
  EXPECT_EQ(element(bf, DType::kBF16, 1), 2.0);
  EXPECT_EQ(element(bf, DType::kBF16, 2), 3.0);
  // A tensor by name from elsewhere is found; an unknown one is refused.
  TensorInfo copy = m->tensors()[2];
  EXPECT_EQ(m->read(copy, scratch).data(), bf.data());
  copy.name = "nope";
  EXPECT_THROW(m->read(copy, scratch), Error);
}

// ---- folders and indexes -----------------------------------------------------------------------

// A folder with shards s1 {a, b} and s2 {c} and an index naming them; tests then break one thing.
struct ShardedFolder {
  TempDir dir;
  Json index = {{"metadata", {{"total_size", 48}}},
                {"weight_map", {{"a", "s1.safetensors"}, {"b", "s1.safetensors"}, {"c", "s2.safetensors"}}}};
  ShardedFolder() {
    write_st(dir / "s1.safetensors", {{"a", entry("F32", {4}, 0, 16)}, {"b", entry("F32", {4}, 16, 32)}}, 32);
    write_st(dir / "s2.safetensors", {{"c", entry("F32", {4}, 0, 16)}}, 16);
  }
  std::string index_path() const { return dir / "model.safetensors.index.json"; }
  std::string write_index() const {
    test::write_file(index_path(), index.dump());
    return dir.path();
  }
};

TEST(SafetensorsFolder, IndexIsAuthoritativeAndStrayShardsIgnored) {
  ShardedFolder f;
  write_st(f.dir / "stray.safetensors", {{"z", entry("F32", {1}, 0, 4)}}, 4);
  write_st(f.dir / "model.safetensors", {{"y", entry("F32", {1}, 0, 4)}}, 4);  // not in the index either
  auto m = SafetensorsModel::open(f.write_index());
  EXPECT_EQ(m->shard_files(), (std::vector<std::string>{"s1.safetensors", "s2.safetensors"}));
  ASSERT_EQ(m->tensors().size(), 3u);
  EXPECT_EQ(m->tensors()[0].name, "a");
  EXPECT_EQ(m->tensors()[2].name, "c");
  EXPECT_EQ(m->find("z"), nullptr);
  EXPECT_EQ(m->find("y"), nullptr);
}

TEST(SafetensorsFolder, IndexAndShardsMustAgree) {
  {
    ShardedFolder f;  // "c" also in s1: a duplicate across shards, naming both
    write_st(f.dir / "s1.safetensors",
             {{"a", entry("F32", {4}, 0, 16)}, {"b", entry("F32", {4}, 16, 32)}, {"c", entry("F32", {1}, 32, 36)}}, 36);
    expect_error(f.write_index(), f.dir / "s2.safetensors", {"tensor 'c'", f.dir / "s1.safetensors", "duplicate"});
  }
  {
    ShardedFolder f;
    f.index["weight_map"]["d"] = "s3.safetensors";
    expect_error(f.write_index(), f.index_path(), {"shard 's3.safetensors'", "tensor 'd'", "does not exist"});
  }
  {
    ShardedFolder f;
    f.index["weight_map"]["d"] = "s2.safetensors";
    expect_error(f.write_index(), f.index_path(), {"tensor 'd'", "'s2.safetensors'", "does not contain it"});
  }
  {
    ShardedFolder f;
    f.index["weight_map"].erase("b");
    expect_error(f.write_index(), f.dir / "s1.safetensors", {"tensor 'b'", "not listed in", f.index_path()});
  }
  {
    ShardedFolder f;
    f.index["weight_map"]["c"] = "s1.safetensors";
    f.index["weight_map"]["a"] = "s2.safetensors";
    expect_error(f.write_index(), f.dir / "s1.safetensors", {"tensor 'a'", "maps it to 's2.safetensors'"});
  }
  {
    ShardedFolder f;  // a broken shard is reported under its own name
    test::write_file(f.dir / "s2.safetensors", "abc");
    expect_error(f.write_index(), f.dir / "s2.safetensors", {"too short"});
  }
}

TEST(SafetensorsFolder, IndexEntriesMustStayInsideTheFolder) {
  TempDir outside;
  write_st(outside / "x.safetensors", {{"d", entry("F32", {1}, 0, 4)}}, 4);
  {
    ShardedFolder f;
    fs::create_directory(f.dir / "sub");
    fs::copy_file(outside / "x.safetensors", f.dir / "x.safetensors");
    f.index["weight_map"]["d"] = "sub/../x.safetensors";
    expect_error(f.write_index(), f.index_path(), {"'sub/../x.safetensors'", "tensor 'd'", "contains '..'"});
  }
  {
    ShardedFolder f;
    f.index["weight_map"]["d"] = "../x.safetensors";
    expect_error(f.write_index(), f.index_path(), {"'../x.safetensors'", "tensor 'd'", "contains '..'"});
  }
  {
    ShardedFolder f;
    f.index["weight_map"]["d"] = outside / "x.safetensors";
    expect_error(f.write_index(), f.index_path(), {outside / "x.safetensors", "tensor 'd'", "absolute path"});
  }
  {
    ShardedFolder f;
    fs::create_symlink(outside / "x.safetensors", f.dir / "link.safetensors");
    f.index["weight_map"]["d"] = "link.safetensors";
    expect_error(f.write_index(), f.index_path(), {"'link.safetensors'", "tensor 'd'", "outside the model folder"});
  }
  {
    ShardedFolder f;  // a subfolder inside the model folder is fine
    fs::create_directory(f.dir / "sub");
    fs::copy_file(outside / "x.safetensors", f.dir / "sub/x.safetensors");
    f.index["weight_map"]["d"] = "sub/x.safetensors";
    EXPECT_EQ(SafetensorsModel::open(f.write_index())->tensors().size(), 4u);
  }
}

TEST(SafetensorsFolder, FoldersWithoutIndexOrModelFile) {
  TempDir d;
  expect_error(d.path(), d.path(), {"no model.safetensors"});
  write_st(d / "adapter_model.safetensors", {{"a", entry("F32", {1}, 0, 4)}}, 4);
  expect_error(d.path(), d.path(), {"'adapter_model.safetensors'", "pass that file itself"});
  write_st(d / "other.safetensors", {{"a", entry("F32", {1}, 0, 4)}}, 4);
  expect_error(d.path(), d.path(), {"2 *.safetensors files", "index is needed"});
  write_st(d / "model.safetensors", {{"m", entry("F32", {1}, 0, 4)}}, 4);
  auto m = SafetensorsModel::open(d.path() + "/");
  ASSERT_EQ(m->tensors().size(), 1u);
  EXPECT_EQ(m->tensors()[0].name, "m");
  expect_error(d / "missing", d / "missing", {"no such file"});
}

// ---- memory stays bounded --------------------------------------------------------------------

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * uint64_t(sysconf(_SC_PAGESIZE));
}

// release() drops the pages read() faulted in: RSS falls by (nearly) the tensor's size. The
// 4 MiB slack absorbs unrelated allocations between the two measurements.
TEST(SafetensorsRelease, DropsTensorPages) {
  TempDir d;
  const uint64_t n = 16ull << 20;
  write_st(d / "big.safetensors", {{"big", entry("F32", {int64_t(n / 4)}, 0, n)}}, n);
  auto m = SafetensorsModel::open(d / "big.safetensors");
  std::vector<uint8_t> scratch;
  auto bytes = m->read(m->tensors()[0], scratch);
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += 512) sum += bytes[i];  // touch every page
  EXPECT_EQ(sum, 0u);
  const uint64_t before = resident_bytes();
  m->release(m->tensors()[0]);
  const uint64_t after = resident_bytes();
  EXPECT_GE(before, after + n - (4ull << 20)) << "before " << before << " after " << after;
  EXPECT_EQ(m->read(m->tensors()[0], scratch)[n - 1], 0);  // still readable: pages fault back in
}

}  // namespace
}  // namespace temper
