// Interoperability with ggml's own GGUF code (libggml-base.so from node-llama-cpp, installed by
// scripts/setup-llama-ref.sh): files we write load in ggml's reader with the same KVs, tensor
// types and offsets, and files ggml's writer produces load in ours.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "formats/gguf.h"
#include "formats/gguf_bytes.h"
#include "util/test_util.h"

namespace temper {
namespace {

// The few declarations we need, copied from ggml include/gguf.h and ggml.h (node-llama-cpp
// 3.22.1's llama.cpp). `enum gguf_type` / `enum ggml_type` are C enums, passed as int.
struct gguf_context;
struct ggml_context;
struct ggml_tensor;
struct gguf_init_params {
  bool no_alloc;
  ggml_context** ctx;
};
struct ggml_init_params {
  size_t mem_size;
  void* mem_buffer;
  bool no_alloc;
};

struct Ggml {
  void* lib = nullptr;
  gguf_context* (*init_from_file)(const char*, gguf_init_params);
  gguf_context* (*init_empty)();
  void (*free)(gguf_context*);
  int64_t (*get_n_kv)(const gguf_context*);
  int64_t (*find_key)(const gguf_context*, const char*);
  const char* (*get_key)(const gguf_context*, int64_t);
  int (*get_kv_type)(const gguf_context*, int64_t);
  int (*get_arr_type)(const gguf_context*, int64_t);
  uint32_t (*get_val_u32)(const gguf_context*, int64_t);
  int32_t (*get_val_i32)(const gguf_context*, int64_t);
  float (*get_val_f32)(const gguf_context*, int64_t);
  bool (*get_val_bool)(const gguf_context*, int64_t);
  const char* (*get_val_str)(const gguf_context*, int64_t);
  size_t (*get_arr_n)(const gguf_context*, int64_t);
  const void* (*get_arr_data)(const gguf_context*, int64_t);
  const char* (*get_arr_str)(const gguf_context*, int64_t, size_t);
  size_t (*get_alignment)(const gguf_context*);
  size_t (*get_data_offset)(const gguf_context*);
  int64_t (*get_n_tensors)(const gguf_context*);
  size_t (*get_tensor_offset)(const gguf_context*, int64_t);
  const char* (*get_tensor_name)(const gguf_context*, int64_t);
  int (*get_tensor_type)(const gguf_context*, int64_t);
  const int64_t* (*get_tensor_ne)(const gguf_context*, int64_t);
  size_t (*get_tensor_size)(const gguf_context*, int64_t);
  size_t (*get_meta_size)(const gguf_context*);
  void (*set_val_u32)(gguf_context*, const char*, uint32_t);
  void (*set_val_i32)(gguf_context*, const char*, int32_t);
  void (*set_val_f32)(gguf_context*, const char*, float);
  void (*set_val_bool)(gguf_context*, const char*, bool);
  void (*set_val_str)(gguf_context*, const char*, const char*);
  void (*set_arr_data)(gguf_context*, const char*, int, const void*, size_t);
  void (*set_arr_str)(gguf_context*, const char*, const char**, size_t);
  void (*add_tensor)(gguf_context*, const ggml_tensor*);
  void (*set_tensor_data)(gguf_context*, const char*, const void*);
  bool (*write_to_file)(const gguf_context*, const char*, bool);
  ggml_context* (*ggml_init)(ggml_init_params);
  void (*ggml_free)(ggml_context*);
  ggml_tensor* (*new_tensor)(ggml_context*, int, int, const int64_t*);
  ggml_tensor* (*set_name)(ggml_tensor*, const char*);

  template <typename F>
  void sym(F& f, const char* name) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    if (!f) throw std::runtime_error(std::string("libggml-base.so lacks ") + name);
  }

  Ggml() {
    lib = dlopen(TEMPER_GGML_BASE_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw std::runtime_error(std::string("cannot load ") + TEMPER_GGML_BASE_LIB + " (" + dlerror() +
                               "); run scripts/setup-llama-ref.sh");
    sym(init_from_file, "gguf_init_from_file"), sym(init_empty, "gguf_init_empty"), sym(free, "gguf_free");
    sym(get_n_kv, "gguf_get_n_kv"), sym(find_key, "gguf_find_key"), sym(get_key, "gguf_get_key");
    sym(get_kv_type, "gguf_get_kv_type"), sym(get_arr_type, "gguf_get_arr_type");
    sym(get_val_u32, "gguf_get_val_u32"), sym(get_val_i32, "gguf_get_val_i32");
    sym(get_val_f32, "gguf_get_val_f32"), sym(get_val_bool, "gguf_get_val_bool");
    sym(get_val_str, "gguf_get_val_str"), sym(get_arr_n, "gguf_get_arr_n");
    sym(get_arr_data, "gguf_get_arr_data"), sym(get_arr_str, "gguf_get_arr_str");
    sym(get_alignment, "gguf_get_alignment"), sym(get_data_offset, "gguf_get_data_offset");
    sym(get_n_tensors, "gguf_get_n_tensors"), sym(get_tensor_offset, "gguf_get_tensor_offset");
    sym(get_tensor_name, "gguf_get_tensor_name"), sym(get_tensor_type, "gguf_get_tensor_type");
    sym(get_tensor_ne, "gguf_get_tensor_ne"), sym(get_tensor_size, "gguf_get_tensor_size");
    sym(get_meta_size, "gguf_get_meta_size");
    sym(set_val_u32, "gguf_set_val_u32"), sym(set_val_i32, "gguf_set_val_i32");
    sym(set_val_f32, "gguf_set_val_f32"), sym(set_val_bool, "gguf_set_val_bool");
    sym(set_val_str, "gguf_set_val_str"), sym(set_arr_data, "gguf_set_arr_data");
    sym(set_arr_str, "gguf_set_arr_str"), sym(add_tensor, "gguf_add_tensor");
    sym(set_tensor_data, "gguf_set_tensor_data"), sym(write_to_file, "gguf_write_to_file");
    sym(ggml_init, "ggml_init"), sym(ggml_free, "ggml_free");
    sym(new_tensor, "ggml_new_tensor"), sym(set_name, "ggml_set_name");
  }
};

Ggml& ggml() {
  static Ggml g;
  return g;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

struct TensorCase {
  std::string name;
  DType type;
  std::vector<int64_t> ne;  // ggml order
};
const std::vector<TensorCase> kTensors = {
    {"token_embd.weight", DType::kQ4_K, {256, 3}},
    {"blk.0.attn_norm.weight", DType::kF32, {7}},
    {"blk.0.attn_q.weight", DType::kQ8_0, {96, 5}},
    {"blk.0.ffn_down.weight", DType::kQ6_K, {256, 1, 2}},
    {"blk.0.ffn_up.weight", DType::kF16, {3, 3}},
    {"output.weight", DType::kBF16, {5, 1, 1, 1}},
};

uint64_t nbytes(const TensorCase& c) { return dtype_bytes(c.type, checked_numel(c.ne, c.name)); }

class GgufGgml : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufGgml, OurFileLoadsInGgml) {
  const uint32_t alignment = GetParam();
  test::TempDir dir;
  const std::string path = dir / "ours.gguf";
  const std::vector<std::string> tokens = {"<s>", "</s>", "héllo", "世界", ""};
  const std::vector<int32_t> types = {3, 3, 1, 1, -7};
  {
    GgufWriter w(path, false, alignment);
    w.add_string("general.architecture", "llama");
    w.add_u32("general.quantization_version", 2);
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
    w.add_bool("tokenizer.ggml.add_bos_token", true);
    w.add_i32("x.i32", -5);
    w.add_string_array("tokenizer.ggml.tokens", tokens);
    w.add_array<int32_t>("tokenizer.ggml.token_type", types);
    for (const auto& c : kTensors) w.add_tensor_ne(c.name, c.type, c.ne);
    w.write_header();
    for (size_t i = 0; i < kTensors.size(); ++i) w.write_tensor_data(kTensors[i].name, random_bytes(nbytes(kTensors[i]), i));
    w.finish();
  }
  Ggml& g = ggml();
  gguf_context* ctx = g.init_from_file(path.c_str(), {true, nullptr});
  ASSERT_NE(ctx, nullptr) << "ggml refused " << path;
  const GgufFile ours(path);
  EXPECT_EQ(g.get_alignment(ctx), alignment);
  EXPECT_EQ(g.get_data_offset(ctx), ours.data_offset());
  ASSERT_EQ(g.get_n_kv(ctx), int64_t(ours.kvs().size()));
  EXPECT_EQ(g.get_n_kv(ctx), alignment == 32 ? 7 : 8);
  for (int64_t i = 0; i < g.get_n_kv(ctx); ++i) EXPECT_EQ(g.get_key(ctx, i), ours.kvs()[size_t(i)].key);
  EXPECT_STREQ(g.get_val_str(ctx, g.find_key(ctx, "general.architecture")), "llama");
  EXPECT_EQ(g.get_val_u32(ctx, g.find_key(ctx, "general.quantization_version")), 2u);
  EXPECT_EQ(g.get_val_f32(ctx, g.find_key(ctx, "llama.attention.layer_norm_rms_epsilon")), 1e-6f);
  EXPECT_TRUE(g.get_val_bool(ctx, g.find_key(ctx, "tokenizer.ggml.add_bos_token")));
  EXPECT_EQ(g.get_val_i32(ctx, g.find_key(ctx, "x.i32")), -5);
  const int64_t tok = g.find_key(ctx, "tokenizer.ggml.tokens");
  EXPECT_EQ(g.get_kv_type(ctx, tok), 9);
  EXPECT_EQ(g.get_arr_type(ctx, tok), 8);
  ASSERT_EQ(g.get_arr_n(ctx, tok), tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(g.get_arr_str(ctx, tok, i), tokens[i]);
  const int64_t tt = g.find_key(ctx, "tokenizer.ggml.token_type");
  ASSERT_EQ(g.get_arr_n(ctx, tt), types.size());
  EXPECT_EQ(std::memcmp(g.get_arr_data(ctx, tt), types.data(), types.size() * 4), 0);

  ASSERT_EQ(g.get_n_tensors(ctx), int64_t(kTensors.size()));
  const std::string file = test::read_file(path);
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto& c = kTensors[i];
    SCOPED_TRACE(c.name);
    EXPECT_STREQ(g.get_tensor_name(ctx, int64_t(i)), c.name.c_str());
    EXPECT_EQ(g.get_tensor_type(ctx, int64_t(i)), int(c.type));
    EXPECT_EQ(g.get_tensor_size(ctx, int64_t(i)), nbytes(c));
    const int64_t* ne = g.get_tensor_ne(ctx, int64_t(i));
    for (size_t d = 0; d < 4; ++d) EXPECT_EQ(ne[d], d < c.ne.size() ? c.ne[d] : 1);
    const size_t off = g.get_tensor_offset(ctx, int64_t(i));
    EXPECT_EQ(off, ours.layout(ours.tensors()[i]).offset);
    // The bytes at ggml's offsets are the ones we streamed.
    const auto want = random_bytes(nbytes(c), i);
    EXPECT_EQ(file.compare(g.get_data_offset(ctx) + off, want.size(), reinterpret_cast<const char*>(want.data()), want.size()), 0);
  }
  g.free(ctx);
}

// Writes a file with ggml's gguf writer; returns its data tensors' bytes.
std::vector<std::vector<uint8_t>> write_with_ggml(const std::string& path, uint32_t alignment, size_t* meta_size) {
  Ggml& g = ggml();
  gguf_context* ctx = g.init_empty();
  if (alignment != 32) g.set_val_u32(ctx, "general.alignment", alignment);
  g.set_val_str(ctx, "general.architecture", "gemma3");
  g.set_val_u32(ctx, "gemma3.block_count", 26);
  g.set_val_f32(ctx, "gemma3.rope.freq_base", 1e6f);
  g.set_val_i32(ctx, "x.i32", -9);
  g.set_val_bool(ctx, "x.flag", false);
  const char* toks[] = {"a", "bé", "🦙"};
  g.set_arr_str(ctx, "tokenizer.ggml.tokens", toks, 3);
  const float scores[] = {0.5f, -1.25f};
  g.set_arr_data(ctx, "tokenizer.ggml.scores", 6 /* GGUF_TYPE_FLOAT32 */, scores, 2);
  ggml_context* mem = g.ggml_init({1 << 20, nullptr, true});
  EXPECT_NE(mem, nullptr);
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto& c = kTensors[i];
    ggml_tensor* t = g.new_tensor(mem, int(c.type), int(c.ne.size()), c.ne.data());
    g.set_name(t, c.name.c_str());
    g.add_tensor(ctx, t);
    data.push_back(random_bytes(nbytes(c), 100 + i));
    g.set_tensor_data(ctx, c.name.c_str(), data.back().data());
  }
  EXPECT_TRUE(g.write_to_file(ctx, path.c_str(), false));
  *meta_size = g.get_meta_size(ctx);
  g.free(ctx);
  g.ggml_free(mem);
  return data;
}

TEST(GgufGgmlWriter, GgmlFileLoadsInOurs) {
  test::TempDir dir;
  const std::string path = dir / "ggml.gguf";
  size_t meta = 0;
  const auto data = write_with_ggml(path, 32, &meta);
  GgufFile ours(path);
  EXPECT_EQ(ours.alignment(), 32u);
  EXPECT_EQ(ours.data_offset(), meta);
  EXPECT_EQ(ours.get_string("general.architecture"), "gemma3");
  EXPECT_EQ(ours.get_u32("gemma3.block_count"), 26u);
  EXPECT_EQ(ours.get_f32("gemma3.rope.freq_base"), 1e6f);
  EXPECT_EQ(ours.get_i32("x.i32"), -9);
  EXPECT_FALSE(ours.get_bool("x.flag"));
  EXPECT_EQ(ours.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "bé", "🦙"}));
  EXPECT_EQ(ours.get_f32_array("tokenizer.ggml.scores"), (std::vector<float>{0.5f, -1.25f}));
  ASSERT_EQ(ours.tensors().size(), kTensors.size());
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto& c = kTensors[i];
    const TensorInfo& t = ours.tensors()[i];
    SCOPED_TRACE(c.name);
    EXPECT_EQ(t.name, c.name);
    EXPECT_EQ(t.dtype, c.type);
    // ggml drops trailing 1-dims (ggml_n_dims); PyTorch order is the reverse of the rest.
    std::vector<int64_t> ne = c.ne;
    while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
    EXPECT_EQ(t.shape, std::vector<int64_t>(ne.rbegin(), ne.rend()));
    std::vector<uint8_t> scratch;
    const auto bytes = ours.read(t, scratch);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), data[i]);
  }
}

// ggml's writer keeps padding to 32 after `general.alignment` is set (gguf_set_val_u32 does not
// update ctx->alignment), so its file contradicts its own key. ggml's reader refuses it, and so
// must ours: the same strict layout rule on both sides.
TEST(GgufGgmlWriter, CustomAlignmentQuirkRefusedByBothReaders) {
  test::TempDir dir;
  const std::string path = dir / "ggml64.gguf";
  size_t meta = 0;
  write_with_ggml(path, 64, &meta);
  EXPECT_EQ(ggml().init_from_file(path.c_str(), {true, nullptr}), nullptr);
  try {
    GgufFile ours(path);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("padded to 64 bytes"), std::string::npos) << e.what();
  }
}

// Where ggml's reader has the same rule, it refuses the same malformed files we refuse, and
// accepts the valid base file (v2 and v3): our strictness matches the reference.
TEST(GgufGgmlReader, RefusesWhatWeRefuse) {
  using test::Bytes;
  auto one = [](std::string_view name, std::vector<int64_t> ne, uint32_t type, uint64_t offset = 0) {
    return Bytes().header(1, 0).tensor(name, ne, type, offset).pad().zeros(4096).b;
  };
  auto two = [](uint64_t off_a, uint64_t off_b) {
    return Bytes().header(2, 0).tensor("a", {6}, 0, off_a).tensor("b", {8}, 0, off_b).pad().zeros(128).b;
  };
  std::string bad_magic = test::valid_file().b;
  bad_magic[0] = 'X';
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bad magic", bad_magic},
      {"version 1", test::valid_file(1).b},
      {"version 4", test::valid_file(4).b},
      {"big-endian", test::valid_file(__builtin_bswap32(3)).b},
      {"duplicate key", Bytes().header(0, 2).kv_u32("k", 1).kv_u32("k", 2).b},
      {"nested array", Bytes().header(0, 1).str("k").u32(9).u32(9).u64(1).zeros(64).b},
      {"invalid type", Bytes().header(0, 1).str("k").u32(13).u32(0).b},
      {"alignment u64", Bytes().header(0, 1).str("general.alignment").u32(10).u64(32).b},
      {"alignment 48", Bytes().header(0, 1).kv_u32("general.alignment", 48).b},
      {"name too long", one(std::string(64, 'n'), {4}, 0)},
      {"duplicate tensor", Bytes().header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64).b},
      {"n_dims 5", one("t", {1, 1, 1, 1, 1}, 0)},
      {"negative ne", one("t", {4, -2}, 0)},
      {"ne overflow", one("t", {int64_t(1) << 32, int64_t(1) << 31}, 0)},
      {"removed type 4", one("t", {4}, 4)},
      {"type 99", one("t", {4}, 99)},
      {"block size", one("t", {33}, 8)},
      {"misaligned offset", two(0, 24)},
      {"gap", two(0, 64)},
      {"out of order", two(32, 0)},
  };
  test::TempDir dir;
  const std::string path = dir / "x.gguf";
  for (const auto& [what, bytes] : cases) {
    test::write_file(path, bytes);
    gguf_context* ctx = ggml().init_from_file(path.c_str(), {true, nullptr});
    EXPECT_EQ(ctx, nullptr) << "ggml accepted: " << what;
    if (ctx) ggml().free(ctx);
    EXPECT_THROW(GgufFile g(path), Error) << what;
  }
  for (uint32_t version : {2u, 3u}) {
    test::write_file(path, test::valid_file(version).b);
    gguf_context* ctx = ggml().init_from_file(path.c_str(), {true, nullptr});
    ASSERT_NE(ctx, nullptr) << "ggml refused the valid base file v" << version;
    EXPECT_EQ(ggml().get_data_offset(ctx), GgufFile(path).data_offset());
    ggml().free(ctx);
  }
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufGgml, ::testing::Values(32u, 64u, 8u));

}  // namespace
}  // namespace temper
