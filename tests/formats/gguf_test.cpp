// GGUF writer + reader round trips and writer API checks. The byte layout itself is checked
// against a hand-assembled file here and against ggml's own reader/writer in gguf_ggml_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "formats/gguf.h"
#include "util/test_util.h"

namespace temper {
namespace {

using test::TempDir;

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// Expects `f` to throw temper::Error whose message contains every string in `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  lacks: " << p;
  }
}

template <typename T>
std::span<const T> sp(const std::vector<T>& v) { return v; }

TEST(Gguf, EveryKvTypeRoundTrips) {
  TempDir dir;
  const std::string path = dir / "kv.gguf";
  std::vector<std::string> many(100000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = "tok_" + std::to_string(i * 7919);
  const std::vector<std::string> unicode = {"", "héllo wörld", "日本語のテキスト", "emoji 🦙🚀", std::string("nul\0inside", 10)};
  {
    GgufWriter w(path, false);
    w.add_string("general.architecture", "llama");
    w.add_scalar<uint8_t>("t.u8", 250);
    w.add_scalar<int8_t>("t.i8", -100);
    w.add_scalar<uint16_t>("t.u16", 65000);
    w.add_scalar<int16_t>("t.i16", -32000);
    w.add_u32("t.u32", 4000000000u);
    w.add_i32("t.i32", -2000000000);
    w.add_f32("t.f32", 1.0f / 3.0f);
    w.add_bool("t.bool_true", true);
    w.add_bool("t.bool_false", false);
    w.add_u64("t.u64", 18000000000000000000ull);
    w.add_scalar<int64_t>("t.i64", -9000000000000000000ll);
    w.add_scalar<double>("t.f64", 2.718281828459045);
    w.add_string("t.str_unicode", "Grüße, 世界 🌍");
    w.add_string("t.str_empty", "");
    w.add_array<uint8_t>("a.u8", sp(std::vector<uint8_t>{0, 1, 255}));
    w.add_array<int8_t>("a.i8", sp(std::vector<int8_t>{-128, 0, 127}));
    w.add_array<uint16_t>("a.u16", sp(std::vector<uint16_t>{1, 65535}));
    w.add_array<int16_t>("a.i16", sp(std::vector<int16_t>{-32768, 32767}));
    w.add_array<uint32_t>("a.u32", sp(std::vector<uint32_t>{7, 4294967295u}));
    w.add_array<int32_t>("a.i32", sp(std::vector<int32_t>{-1, 2, -3}));
    w.add_array<float>("a.f32", sp(std::vector<float>{0.5f, -1e30f, 3.25f}));
    w.add("a.bool", GgufValue::array(std::vector<bool>{true, false, true}));
    w.add_array<uint64_t>("a.u64", sp(std::vector<uint64_t>{1ull << 63}));
    w.add_array<int64_t>("a.i64", sp(std::vector<int64_t>{-(1ll << 62)}));
    w.add_array<double>("a.f64", sp(std::vector<double>{1e-300, -0.0}));
    w.add_array<int32_t>("a.empty_i32", sp(std::vector<int32_t>{}));
    w.add_string_array("a.empty_str", {});
    w.add_string_array("a.unicode", unicode);
    w.add_string_array("tokenizer.ggml.tokens", many);
    w.write_header();
    w.finish();
  }
  GgufFile g(path);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_FALSE(g.has("general.alignment"));
  ASSERT_EQ(g.kvs().size(), 30u);
  EXPECT_EQ(g.kvs()[0].key, "general.architecture");  // insertion order kept
  EXPECT_EQ(g.kvs()[0].offset, 24u);                  // right after magic, version, two counts
  EXPECT_EQ(g.kvs().back().key, "tokenizer.ggml.tokens");
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_scalar<uint8_t>("t.u8"), 250);
  EXPECT_EQ(g.get_scalar<int8_t>("t.i8"), -100);
  EXPECT_EQ(g.get_scalar<uint16_t>("t.u16"), 65000);
  EXPECT_EQ(g.get_scalar<int16_t>("t.i16"), -32000);
  EXPECT_EQ(g.get_u32("t.u32"), 4000000000u);
  EXPECT_EQ(g.get_i32("t.i32"), -2000000000);
  EXPECT_EQ(g.get_f32("t.f32"), 1.0f / 3.0f);  // bit-exact: stored as raw f32
  EXPECT_TRUE(g.get_bool("t.bool_true"));
  EXPECT_FALSE(g.get_bool("t.bool_false"));
  EXPECT_EQ(g.get_u64("t.u64"), 18000000000000000000ull);
  EXPECT_EQ(g.get_scalar<int64_t>("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(g.get_scalar<double>("t.f64"), 2.718281828459045);
  EXPECT_EQ(g.get_string("t.str_unicode"), "Grüße, 世界 🌍");
  EXPECT_EQ(g.get_string("t.str_empty"), "");
  EXPECT_EQ(g.get_array<uint8_t>("a.u8"), (std::vector<uint8_t>{0, 1, 255}));
  EXPECT_EQ(g.get_array<int8_t>("a.i8"), (std::vector<int8_t>{-128, 0, 127}));
  EXPECT_EQ(g.get_array<uint16_t>("a.u16"), (std::vector<uint16_t>{1, 65535}));
  EXPECT_EQ(g.get_array<int16_t>("a.i16"), (std::vector<int16_t>{-32768, 32767}));
  EXPECT_EQ(g.get_u32_array("a.u32"), (std::vector<uint32_t>{7, 4294967295u}));
  EXPECT_EQ(g.get_i32_array("a.i32"), (std::vector<int32_t>{-1, 2, -3}));
  EXPECT_EQ(g.get_f32_array("a.f32"), (std::vector<float>{0.5f, -1e30f, 3.25f}));
  EXPECT_EQ(g.get_array<bool>("a.bool"), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(g.get_array<uint64_t>("a.u64"), (std::vector<uint64_t>{1ull << 63}));
  EXPECT_EQ(g.get_array<int64_t>("a.i64"), (std::vector<int64_t>{-(1ll << 62)}));
  const auto f64 = g.get_array<double>("a.f64");
  ASSERT_EQ(f64.size(), 2u);
  EXPECT_EQ(f64[0], 1e-300);
  EXPECT_TRUE(std::signbit(f64[1]));
  EXPECT_TRUE(g.get_i32_array("a.empty_i32").empty());
  EXPECT_EQ(g.get("a.empty_i32").type_str(), "array[i32]");
  EXPECT_TRUE(g.get_string_array("a.empty_str").empty());
  EXPECT_EQ(g.get_string_array("a.unicode"), unicode);
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens"), many);
  EXPECT_TRUE(g.tensors().empty());
  // Display strings used by `temper inspect`.
  EXPECT_EQ(g.get("a.i32").to_display(), "[-1, 2, -3]");
  EXPECT_EQ(g.get("t.str_empty").to_display(), "\"\"");
  EXPECT_EQ(g.get("tokenizer.ggml.tokens").to_display(2), "[\"tok_0\", \"tok_7919\", ... (100000 elements)]");
}

TEST(Gguf, TypedGettersNameKeyAndActualType) {
  TempDir dir;
  const std::string path = dir / "t.gguf";
  {
    GgufWriter w(path, false);
    w.add_string("general.name", "x");
    w.add_i32("n", 5);
    w.add_array<float>("scores", sp(std::vector<float>{1.0f}));
    w.write_header();
    w.finish();
  }
  GgufFile g(path);
  expect_error([&] { g.get_u32("general.name"); }, {path, "'general.name'", "is string", "expected u32"});
  expect_error([&] { g.get_u32("n"); }, {"'n'", "is i32", "expected u32"});
  expect_error([&] { g.get_i32_array("scores"); }, {"'scores'", "array[f32]", "expected array[i32]"});
  expect_error([&] { g.get_string_array("n"); }, {"'n'", "expected array[string]"});
  expect_error([&] { g.get_string("missing.key"); }, {path, "missing key 'missing.key'"});
  EXPECT_FALSE(g.has("missing.key"));
  EXPECT_TRUE(g.has("n"));
}

struct TensorCase {
  std::string name;
  DType type;
  std::vector<int64_t> shape;  // PyTorch order
};

// Odd sizes, so nearly every tensor needs padding; quantized bytes are opaque to the container.
const std::vector<TensorCase> kTensors = {
    {"token_embd.weight", DType::kF32, {3, 5}},     // 60 bytes
    {"blk.0.attn_norm.weight", DType::kF16, {7}},   // 14 bytes
    {"blk.0.attn_q.weight", DType::kQ8_0, {3, 64}}, // 3 rows x 2 blocks x 34
    {"blk.0.ffn_up.weight", DType::kQ4_K, {1, 256}},// 144 bytes
    {"blk.0.ffn_down.weight", DType::kQ6_K, {2, 1, 256}},
    {"blk.0.attn_k.weight", DType::kBF16, {1, 1, 1, 3}},
    {"empty", DType::kF32, {0, 4}},                 // zero bytes
    {"output.weight", DType::kIQ4_NL, {1, 32}},
};

uint64_t tensor_bytes(const TensorCase& c) {
  return dtype_bytes(c.type, checked_numel(c.shape, c.name));
}

void write_tensor_file(const std::string& path, uint32_t alignment, size_t chunk) {
  GgufWriter w(path, false, alignment);
  w.add_string("general.architecture", "llama");
  for (const auto& c : kTensors) EXPECT_EQ(w.add_tensor(c.name, c.type, c.shape), tensor_bytes(c));
  w.write_header();
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto bytes = random_bytes(tensor_bytes(kTensors[i]), uint32_t(i));
    for (size_t at = 0; at < bytes.size(); at += chunk)
      w.write_tensor_data(kTensors[i].name, std::span(bytes).subspan(at, std::min(chunk, bytes.size() - at)));
  }
  w.finish();
}

void check_tensor_file(const std::string& path, uint32_t alignment) {
  GgufFile g(path);
  EXPECT_EQ(g.alignment(), alignment);
  EXPECT_EQ(g.has("general.alignment"), alignment != kGgufDefaultAlignment);
  if (alignment != kGgufDefaultAlignment) {
    EXPECT_EQ(g.kvs()[0].key, "general.alignment");
    EXPECT_EQ(g.get_u32("general.alignment"), alignment);
  }
  EXPECT_EQ(g.data_offset() % alignment, 0u);
  ASSERT_EQ(g.tensors().size(), kTensors.size());
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const TensorInfo& t = g.tensors()[i];
    const TensorCase& c = kTensors[i];
    SCOPED_TRACE(c.name);
    EXPECT_EQ(t.name, c.name);
    EXPECT_EQ(t.dtype, c.type);
    EXPECT_EQ(t.shape, c.shape);  // PyTorch order back
    EXPECT_EQ(t.nbytes, tensor_bytes(c));
    const GgufTensorLayout& lay = g.layout(t);
    EXPECT_EQ(lay.n_dims, c.shape.size());
    for (size_t d = 0; d < c.shape.size(); ++d) EXPECT_EQ(lay.ne[d], c.shape[c.shape.size() - 1 - d]);
    for (size_t d = c.shape.size(); d < 4; ++d) EXPECT_EQ(lay.ne[d], 1);
    EXPECT_EQ(lay.offset, expected_offset);
    EXPECT_EQ(lay.file_offset, g.data_offset() + lay.offset);
    expected_offset += (t.nbytes + alignment - 1) / alignment * alignment;
    std::vector<uint8_t> scratch;
    const auto data = g.read(t, scratch);
    EXPECT_TRUE(scratch.empty());  // zero-copy: a view of the mapping
    EXPECT_EQ(std::vector<uint8_t>(data.begin(), data.end()), random_bytes(t.nbytes, uint32_t(i)));
  }
  // ggml's writer pads after the last tensor too.
  EXPECT_EQ(g.file_size(), g.data_offset() + expected_offset);
}

TEST(Gguf, TensorsRoundTripWithPadding) {
  TempDir dir;
  write_tensor_file(dir / "t.gguf", 32, 1 << 20);
  check_tensor_file(dir / "t.gguf", 32);
}

TEST(Gguf, StreamedChunksAndCustomAlignment) {
  TempDir dir;
  write_tensor_file(dir / "t.gguf", 64, 7);  // 7-byte chunks cross every block boundary
  check_tensor_file(dir / "t.gguf", 64);
  write_tensor_file(dir / "t8.gguf", 8, 1000);
  check_tensor_file(dir / "t8.gguf", 8);
}

TEST(Gguf, ExactBytesOfTinyFile) {
  // Assembled by hand from the spec (docs/gguf-and-quantization.md §1.1), not from our writer.
  TempDir dir;
  const std::string path = dir / "tiny.gguf";
  {
    GgufWriter w(path, false);
    w.add_u32("k", 7);
    w.add_tensor("w", DType::kF32, std::vector<int64_t>{2});
    w.write_header();
    const float v[2] = {1.0f, -2.0f};
    w.write_tensor_data("w", {reinterpret_cast<const uint8_t*>(v), sizeof v});
    w.finish();
  }
  std::string e;
  auto u32 = [&](uint32_t x) { e.append(reinterpret_cast<const char*>(&x), 4); };
  auto u64 = [&](uint64_t x) { e.append(reinterpret_cast<const char*>(&x), 8); };
  e += "GGUF";
  u32(3);
  u64(1);  // tensors
  u64(1);  // kvs
  u64(1), e += "k";  // KV: key, type u32, value
  u32(4), u32(7);
  u64(1), e += "w";  // tensor info: name, n_dims, ne[0], type f32, offset
  u32(1), u64(2), u32(0), u64(0);
  ASSERT_EQ(e.size(), 74u);
  e.resize(96, '\0');  // data section aligned to 32
  e += std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  e.resize(128, '\0');  // the tensor is padded to 32 too
  EXPECT_EQ(test::read_file(path), e);
}

TEST(Gguf, WriterRefusesMisuse) {
  TempDir dir;
  const std::string path = dir / "bad.gguf";
  {
    GgufWriter w(path, false);
    w.add_u32("a", 1);
    expect_error([&] { w.add_u32("a", 2); }, {path, "duplicate GGUF key 'a'"});
    expect_error([&] { w.add_u32("", 2); }, {"empty GGUF key"});
    expect_error([&] { w.add_u32("general.alignment", 64); }, {"constructor"});
    expect_error([&] { w.add_tensor(std::string(64, 'x'), DType::kF32, std::vector<int64_t>{1}); },
                 {"is 64 bytes", "1..63"});
    expect_error([&] { w.add_tensor("q", DType::kQ8_0, std::vector<int64_t>{2, 33}); },
                 {"'q'", "row length 33", "q8_0 block size 32"});
    expect_error([&] { w.add_tensor_ne("five", DType::kF32, std::vector<int64_t>{1, 1, 1, 1, 1}); }, {"5 dims"});
    expect_error([&] { w.add_tensor_ne("neg", DType::kF32, std::vector<int64_t>{-1}); }, {"'neg'", "negative"});
    w.add_tensor("t1", DType::kF32, std::vector<int64_t>{4});
    w.add_tensor("t2", DType::kF32, std::vector<int64_t>{2});
    expect_error([&] { w.add_tensor("t1", DType::kF32, std::vector<int64_t>{4}); }, {"duplicate tensor 't1'"});
    const std::vector<uint8_t> b16(16), b8(8);
    expect_error([&] { w.write_tensor_data("t1", b16); }, {"before the header"});
    w.write_header();
    expect_error([&] { w.add_u32("late", 1); }, {"after the header"});
    expect_error([&] { w.write_tensor_data("t2", b8); }, {"'t2'", "expecting tensor 't1'", "declared order"});
    w.write_tensor_data("t1", std::span(b16).first(10));
    expect_error([&] { w.write_tensor_data("t1", b16); }, {"'t1'", "26 bytes written", "holds 16"});
    w.write_tensor_data("t1", std::span(b16).first(6));
    expect_error([&] { w.finish(); }, {"'t2' got 0 of 8 bytes"});
  }
  // An unfinished writer leaves nothing behind, not even its temporary file.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  expect_error([&] { GgufWriter w(path, false, 48); }, {"alignment 48 is not a power of two"});
}

TEST(Gguf, WriterRefusesExistingOutputWithoutOverwrite) {
  TempDir dir;
  const std::string path = dir / "x.gguf";
  test::write_file(path, "old");
  expect_error([&] { GgufWriter w(path, false); }, {path, "exists"});
  {
    GgufWriter w(path, true);
    w.write_header();
    w.finish();
  }
  GgufFile g(path);
  EXPECT_TRUE(g.kvs().empty());
  EXPECT_EQ(g.file_size(), 32u);  // 24-byte header padded to 32, as ggml writes it
}

TEST(Gguf, WriterOnCallersAtomicOutput) {
  TempDir dir;
  const std::string path = dir / "y.gguf";
  {
    AtomicOutput out(path, false);
    GgufWriter w(out);
    w.add_string("general.architecture", "qwen3");
    w.add_tensor("a", DType::kI32, std::vector<int64_t>{3});
    w.write_header();
    const int32_t v[3] = {1, -2, 3};
    w.write_tensor_data("a", {reinterpret_cast<const uint8_t*>(v), sizeof v});
    EXPECT_FALSE(test::run_shell("test -e " + path).exit_code == 0);  // not visible before finish()
    w.finish();
  }
  GgufFile g(path);
  std::vector<uint8_t> scratch;
  const auto bytes = g.read(*g.find("a"), scratch);
  ASSERT_EQ(bytes.size(), 12u);
  int32_t v[3];
  std::memcpy(v, bytes.data(), 12);
  EXPECT_EQ(v[1], -2);
  // A copy of the TensorInfo (not a pointer into the file's list) is looked up by name.
  TensorInfo copy = *g.find("a");
  EXPECT_EQ(g.read(copy, scratch).data(), bytes.data());
  copy.name = "nope";
  expect_error([&] { g.read(copy, scratch); }, {path, "no tensor 'nope'"});
}

}  // namespace
}  // namespace temper
