// Checkpoint (HDF5) tests: round trip through CheckpointWriter/Reader bit for bit, the same
// files read independently by h5py (tests/scripts/h5py_read_checkpoint.py), the zstd plugin,
// malformed inputs and a full disk.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <tuple>

#include "core/error.h"
#include "core/json.h"
#include "core/sha256.h"
#include "formats/checkpoint.h"
#include "util/test_util.h"

namespace temper {
namespace {

using test::TempDir;

struct Tensor {
  TensorInfo info;
  std::vector<uint8_t> bytes;
};

Tensor make_tensor(std::string name, DType dt, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
  Tensor t;
  t.info.name = std::move(name);
  t.info.dtype = dt;
  t.info.shape = std::move(shape);
  t.info.nbytes = dtype_bytes(dt, checked_numel(t.info.shape, t.info.name));
  t.bytes = std::move(bytes);
  EXPECT_EQ(t.bytes.size(), t.info.nbytes) << t.info.name;
  return t;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Awkward shapes and bit patterns; written deliberately out of alphabetical order.
std::vector<Tensor> make_tensors() {
  std::vector<Tensor> ts;
  ts.push_back(make_tensor("model.layers.0.self_attn.q_proj.weight", DType::kF16, {3, 5, 7}, random_bytes(3 * 5 * 7 * 2, 1)));
  ts.push_back(make_tensor("model.embed_tokens.weight", DType::kBF16, {64, 48}, random_bytes(64 * 48 * 2, 2)));
  ts.push_back(make_tensor("model.norm.weight", DType::kF32, {1}, as_bytes(std::vector<float>{1.5f})));
  // 3 MiB, compressible (few distinct values): several chunks, and zstd must shrink it.
  std::vector<float> big(768 * 1024);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(i % 17) * 0.5f;
  ts.push_back(make_tensor("a.big_compressible", DType::kF32, {768, 1024}, as_bytes(big)));
  // 3 MB of random bf16 in one dim: chunks split a 1-D tensor.
  ts.push_back(make_tensor("b.big_1d", DType::kBF16, {1500000}, random_bytes(3000000, 3)));
  // 8.4 MB 3-D: chunks split the middle dim, 351 of its 701 rows each, so every second chunk
  // ends one row past the tensor (padding the in-place copy must leave out of the data).
  ts.push_back(make_tensor("c.partial_chunks", DType::kF32, {3, 701, 1000}, random_bytes(3 * 701 * 1000 * 4, 4)));
  // NaN payloads (quiet and signalling), infinities, signed zero, subnormals, extremes.
  ts.push_back(make_tensor("special.f32", DType::kF32, {9},
                           as_bytes(std::vector<uint32_t>{0x7fc00000, 0x7f800001, 0xffc12345, 0x7f800000, 0xff800000,
                                                          0x80000000, 0x00000001, 0x807fffff, 0x7f7fffff})));
  ts.push_back(make_tensor("special.f16", DType::kF16, {2, 4},
                           as_bytes(std::vector<uint16_t>{0x7c00, 0xfc00, 0x7e01, 0x7d00, 0x0001, 0x83ff, 0x8000, 0x7bff})));
  ts.push_back(make_tensor("special.bf16", DType::kBF16, {6},
                           as_bytes(std::vector<uint16_t>{0x7f81, 0xffc1, 0x7f80, 0x0001, 0x8000, 0x7f7f})));
  ts.push_back(make_tensor("scalar.f32", DType::kF32, {}, as_bytes(std::vector<float>{-2.25f})));
  ts.push_back(make_tensor("empty.f32", DType::kF32, {0, 4}, {}));
  ts.push_back(make_tensor("ids.i32", DType::kI32, {5}, as_bytes(std::vector<int32_t>{-1, 0, 7, INT32_MAX, INT32_MIN})));
  return ts;
}

ModelDescription make_description() {
  ModelDescription d;
  d.arch = find_arch_by_id("llama");
  EXPECT_NE(d.arch, nullptr);
  ModelConfig& c = d.config;
  c.arch = "llama";
  c.hf_architecture = "LlamaForCausalLM";
  c.d_model = 96;
  c.n_layer = 3;
  c.n_vocab = 12;
  c.n_ctx_train = 4096;
  c.norm_eps = 1e-6f;
  c.norm_weight_offset = 1;
  c.post_norms = true;
  c.qk_norm = true;
  c.v_norm = true;
  c.act = Activation::kGeluTanh;
  c.embed_scale = 9.797959f;
  c.attn_scale = 0.0625f;
  c.final_softcap = 30;
  c.tied_embeddings = true;
  c.rope_style = RopeStyle::kInterleaved;
  c.ple_dim = 8;
  c.ple_vocab = 12;
  c.moe_norm_topk = false;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.pad_token_id = 0;
  for (int i = 0; i < 3; ++i) {
    LayerConfig l;
    l.n_head = 4 + i;
    l.n_head_kv = 2;
    l.head_dim = 16 * (i + 1);
    l.d_ff = i == 1 ? 0 : 256;
    l.window = i == 2 ? 0 : 512;
    l.rope_theta = i == 2 ? 1e6f : 1e4f;
    l.n_rot = 8 * (i + 1);
    // Ragged: 4, 0 and 2 factors.
    if (i == 0) l.rope_freq_factors = {1.f, 2.f, 4.f, 8.f};
    if (i == 2) l.rope_freq_factors = {0.5f, 1e30f};
    l.rope_pos_scale = i == 1 ? 0.25f : 1.f;
    l.kv_source_layer = i == 2 ? 0 : i;
    l.k_eq_v = i == 1;
    l.ffn = i == 0 ? FfnKind::kDense : i == 1 ? FfnKind::kMoe : FfnKind::kDenseAndMoe;
    l.n_expert = i == 0 ? 0 : 8;
    l.n_expert_used = i == 0 ? 0 : 2;
    l.d_ff_expert = i == 0 ? 0 : 64;
    l.has_layer_scalar = i != 1;
    c.layers.push_back(l);
  }
  d.config_json = R"({"architectures": ["LlamaForCausalLM"], "note": "ünïcödé"})";
  d.generation_config_json = R"({"do_sample": true})";
  TokenizerAssets& t = d.tokenizer;
  t.kind = "bpe";
  t.gguf_model = "gpt2";
  t.gguf_pre = "llama-bpe";
  t.tokens = {"<pad>", "<s>", "</s>", "▁hello", "日本語", "é", "🦙", "<0x0A>", "", " space ", "Ġworld", "\t\n"};
  t.scores = {0, 0, 0, -1.5f, -2.f, -3.f, -4.f, 0, -5.f, -6.f, -7.f, -8.f};
  t.token_types = {3, 3, 3, 1, 1, 1, 1, 6, 5, 1, 4, 1};
  t.merges = {"▁ h", "日 本", "Ġ w", "é é"};
  t.bos_id = 1;
  t.eos_id = 2;
  t.unk_id = -1;
  t.pad_id = 0;
  t.eot_id = 11;
  t.eom_id = 10;
  t.add_bos = true;
  t.add_eos = false;
  t.add_space_prefix = true;
  t.eog_ids = {2, 11};
  t.tokenizer_json = R"({"model": {"type": "BPE"}})";
  t.tokenizer_model = std::string("\x0a\x00\xff\x80 binary\x00", 12);  // NULs and non-UTF-8 bytes
  t.tokenizer_config_json = R"({"add_bos_token": true})";
  // special_tokens_map_json stays empty: stored as absent.
  d.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}— ✓";
  d.provenance = {"/models/tiny", {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"},
                  std::string(64, 'a'), "temper 0.1.0", "2025-01-02T03:04:05Z"};
  return d;
}

// in_pieces: through write_tensor(info, ByteReader), as convert does.
void write_checkpoint(const std::string& path, int zstd_level, const ModelDescription& d, const std::vector<Tensor>& ts,
                      bool in_pieces = false) {
  CheckpointWriter w(path, {zstd_level});
  w.write_description(d);
  for (const auto& t : ts) {
    if (!in_pieces) {
      w.write_tensor(t.info, t.bytes);
      continue;
    }
    // Views of at most 65537 bytes: boundaries that fall anywhere within the chunks.
    uint64_t expected = 0;
    w.write_tensor(t.info, [&](uint64_t offset, uint64_t max_len) {
      EXPECT_EQ(offset, expected) << t.info.name << ": bytes are pulled front to back";
      EXPECT_LE(offset + max_len, t.bytes.size()) << t.info.name;
      const size_t n = size_t(std::min<uint64_t>(max_len, 65537));
      expected = offset + n;
      return std::span<const uint8_t>(t.bytes.data() + offset, n);
    });
  }
  w.close();
}

void expect_config_equal(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.hf_architecture, b.hf_architecture);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.n_vocab, b.n_vocab);
  EXPECT_EQ(a.n_ctx_train, b.n_ctx_train);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.norm_weight_offset, b.norm_weight_offset);
  EXPECT_EQ(a.post_norms, b.post_norms);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.v_norm, b.v_norm);
  EXPECT_EQ(a.act, b.act);
  EXPECT_EQ(a.embed_scale, b.embed_scale);
  EXPECT_EQ(a.attn_scale, b.attn_scale);
  EXPECT_EQ(a.final_softcap, b.final_softcap);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.rope_style, b.rope_style);
  EXPECT_EQ(a.ple_dim, b.ple_dim);
  EXPECT_EQ(a.ple_vocab, b.ple_vocab);
  EXPECT_EQ(a.moe_norm_topk, b.moe_norm_topk);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE(cat("layer ", i));
    const LayerConfig &x = a.layers[i], &y = b.layers[i];
    EXPECT_EQ(x.n_head, y.n_head);
    EXPECT_EQ(x.n_head_kv, y.n_head_kv);
    EXPECT_EQ(x.head_dim, y.head_dim);
    EXPECT_EQ(x.d_ff, y.d_ff);
    EXPECT_EQ(x.window, y.window);
    EXPECT_EQ(x.rope_theta, y.rope_theta);
    EXPECT_EQ(x.n_rot, y.n_rot);
    EXPECT_EQ(x.rope_freq_factors, y.rope_freq_factors);
    EXPECT_EQ(x.rope_pos_scale, y.rope_pos_scale);
    EXPECT_EQ(x.rope_freq_factors_long, y.rope_freq_factors_long);
    EXPECT_EQ(x.rope_long_after, y.rope_long_after);
    EXPECT_EQ(x.rope_attn_factor, y.rope_attn_factor);
    EXPECT_EQ(x.kv_source_layer, y.kv_source_layer);
    EXPECT_EQ(x.k_eq_v, y.k_eq_v);
    EXPECT_EQ(x.ffn, y.ffn);
    EXPECT_EQ(x.n_expert, y.n_expert);
    EXPECT_EQ(x.n_expert_used, y.n_expert_used);
    EXPECT_EQ(x.d_ff_expert, y.d_ff_expert);
    EXPECT_EQ(x.has_layer_scalar, y.has_layer_scalar);
  }
}

void expect_description_equal(const ModelDescription& a, const ModelDescription& b) {
  EXPECT_EQ(a.arch, b.arch);
  expect_config_equal(a.config, b.config);
  EXPECT_EQ(a.config_json, b.config_json);
  EXPECT_EQ(a.generation_config_json, b.generation_config_json);
  const TokenizerAssets &x = a.tokenizer, &y = b.tokenizer;
  EXPECT_EQ(x.kind, y.kind);
  EXPECT_EQ(x.gguf_model, y.gguf_model);
  EXPECT_EQ(x.gguf_pre, y.gguf_pre);
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_EQ(x.scores, y.scores);
  EXPECT_EQ(x.token_types, y.token_types);
  EXPECT_EQ(x.merges, y.merges);
  EXPECT_EQ(x.bos_id, y.bos_id);
  EXPECT_EQ(x.eos_id, y.eos_id);
  EXPECT_EQ(x.unk_id, y.unk_id);
  EXPECT_EQ(x.pad_id, y.pad_id);
  EXPECT_EQ(x.eot_id, y.eot_id);
  EXPECT_EQ(x.eom_id, y.eom_id);
  EXPECT_EQ(x.add_bos, y.add_bos);
  EXPECT_EQ(x.add_eos, y.add_eos);
  EXPECT_EQ(x.add_space_prefix, y.add_space_prefix);
  EXPECT_EQ(x.eog_ids, y.eog_ids);
  EXPECT_EQ(x.tokenizer_json, y.tokenizer_json);
  EXPECT_EQ(x.tokenizer_model, y.tokenizer_model);
  EXPECT_EQ(x.tokenizer_config_json, y.tokenizer_config_json);
  EXPECT_EQ(x.special_tokens_map_json, y.special_tokens_map_json);
  EXPECT_EQ(a.chat_template, b.chat_template);
  EXPECT_EQ(a.provenance.source, b.provenance.source);
  EXPECT_EQ(a.provenance.files, b.provenance.files);
  EXPECT_EQ(a.provenance.config_sha256, b.provenance.config_sha256);
  EXPECT_EQ(a.provenance.converter, b.provenance.converter);
  EXPECT_EQ(a.provenance.created_utc, b.provenance.created_utc);
}

// Expects `f` to throw a temper::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  lacks: " << p;
  }
}

// (zstd level, written in pieces)
class CheckpointRoundTrip : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(CheckpointRoundTrip, DescriptionAndTensorsBitForBit) {
  TempDir dir;
  const std::string path = dir / "model.h5";
  const ModelDescription desc = make_description();
  const std::vector<Tensor> ts = make_tensors();
  const auto [level, in_pieces] = GetParam();
  write_checkpoint(path, level, desc, ts, in_pieces);

  CheckpointReader r(path, CheckpointCheck::kLayoutOnly);  // the description is not a runnable model
  EXPECT_EQ(r.format_version(), kCheckpointFormatVersion);
  EXPECT_EQ(r.compressed(), level > 0);
  expect_description_equal(r.description(), desc);
  ASSERT_EQ(r.tensors().size(), ts.size());
  std::vector<uint8_t> scratch;
  for (size_t i = 0; i < ts.size(); ++i) {
    const TensorInfo& got = r.tensors()[i];
    SCOPED_TRACE(ts[i].info.name);
    EXPECT_EQ(got.name, ts[i].info.name);  // write order, not alphabetical
    EXPECT_EQ(got.dtype, ts[i].info.dtype);
    EXPECT_EQ(got.shape, ts[i].info.shape);
    EXPECT_EQ(got.nbytes, ts[i].info.nbytes);
    auto bytes = r.read(got, scratch);
    ASSERT_EQ(bytes.size(), ts[i].bytes.size());
    EXPECT_TRUE(bytes.empty() || std::memcmp(bytes.data(), ts[i].bytes.data(), bytes.size()) == 0);
  }
  EXPECT_EQ(r.find("special.bf16")->shape, (std::vector<int64_t>{6}));
  expect_error([&] { r.read(TensorInfo{"nope", DType::kF32, {1}, 4}, scratch); }, {path, "nope", "no such tensor"});
}

INSTANTIATE_TEST_SUITE_P(Levels, CheckpointRoundTrip, ::testing::Combine(::testing::Values(0, 3), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "zstd3" : "uncompressed") +
                                  (std::get<1>(info.param) ? "_pieces" : "_whole");
                         });

// LongRoPE's per-layer fields (long factors, ragged like rope_freq_factors; the original
// context; the attention factor) round-trip, and are written only when a layer uses them, so
// checkpoints without LongRoPE keep their layout.
TEST(CheckpointLongRope, FieldsRoundTripAndAreAbsentWhenUnused) {
  TempDir dir;
  ModelDescription desc = make_description();
  for (size_t i = 0; i < desc.config.layers.size(); ++i) {
    LayerConfig& l = desc.config.layers[i];
    if (i != 1) l.rope_freq_factors_long.assign(size_t(l.n_rot / 2), 3.5f + float(i));
    l.rope_long_after = i != 1 ? 4096 : 0;
    l.rope_attn_factor = 1.1902381f;
  }
  write_checkpoint(dir / "long.h5", 0, desc, make_tensors(), false);
  expect_description_equal(CheckpointReader(dir / "long.h5", CheckpointCheck::kLayoutOnly).description(), desc);

  write_checkpoint(dir / "plain.h5", 0, make_description(), make_tensors(), false);
  const ModelDescription plain = CheckpointReader(dir / "plain.h5", CheckpointCheck::kLayoutOnly).description();
  for (const LayerConfig& l : plain.config.layers) {
    EXPECT_TRUE(l.rope_freq_factors_long.empty());
    EXPECT_EQ(l.rope_attn_factor, 1.0f);
  }
  const std::string bytes = test::read_file(dir / "plain.h5");
  EXPECT_EQ(bytes.find("rope_freq_factors_long"), std::string::npos);
  EXPECT_EQ(bytes.find("rope_attn_factor"), std::string::npos);
  EXPECT_NE(test::read_file(dir / "long.h5").find("rope_freq_factors_long"), std::string::npos);
}

test::RunResult run_h5py(const std::string& file, const std::string& plugin_dir) {
  return test::run_shell(cat("HDF5_PLUGIN_PATH='", plugin_dir, "' ", TEMPER_PYTHON, " ", test::source_dir(),
                             "/tests/scripts/h5py_read_checkpoint.py '", file, "'"));
}

// h5py (no temper code) must see the documented layout and the exact bytes.
void check_with_h5py(const std::string& file, const std::string& plugin_dir, bool compressed) {
  const ModelDescription d = make_description();
  const std::vector<Tensor> ts = make_tensors();
  auto res = run_h5py(file, plugin_dir);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  Json j = Json::parse(res.out);
  EXPECT_EQ(j["format"], "temper-checkpoint");
  EXPECT_EQ(j["format_version"], kCheckpointFormatVersion);
  EXPECT_EQ(j["format_version_dtype"], "int32");
  EXPECT_EQ(j["arch"], "llama");
  EXPECT_EQ(j["hf_architecture"], "LlamaForCausalLM");

  const Json& cfg = j["config"];
  EXPECT_EQ(cfg["d_model"], 96);
  EXPECT_EQ(cfg["act"], "gelu_tanh");
  EXPECT_EQ(cfg["rope_style"], "interleaved");
  EXPECT_EQ(cfg["post_norms"], 1);
  EXPECT_EQ(cfg["moe_norm_topk"], 0);
  EXPECT_EQ(cfg["norm_eps"].get<float>(), 1e-6f);
  EXPECT_EQ(cfg["bos_token_id"], 1);
  EXPECT_EQ(j["config_json"], d.config_json);
  const Json& layers = j["layers"];
  EXPECT_EQ(layers["n_head"], (std::vector<int>{4, 5, 6}));
  EXPECT_EQ(layers["ffn"], (std::vector<std::string>{"dense", "moe", "dense_and_moe"}));
  EXPECT_EQ(layers["k_eq_v"], (std::vector<int>{0, 1, 0}));
  EXPECT_EQ(layers["rope_theta"].get<std::vector<float>>(), (std::vector<float>{1e4f, 1e4f, 1e6f}));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(layers["rope_freq_factors_per_layer"][i].get<std::vector<float>>(), d.config.layers[i].rope_freq_factors);

  const Json& tok = j["tokenizer"];
  EXPECT_EQ(tok["tokens"].get<std::vector<std::string>>(), d.tokenizer.tokens);
  EXPECT_EQ(tok["merges"].get<std::vector<std::string>>(), d.tokenizer.merges);
  EXPECT_EQ(tok["scores"].get<std::vector<float>>(), d.tokenizer.scores);
  EXPECT_EQ(tok["token_types"].get<std::vector<int32_t>>(), d.tokenizer.token_types);
  EXPECT_EQ(tok["eog_ids"].get<std::vector<int32_t>>(), d.tokenizer.eog_ids);
  EXPECT_EQ(tok["gguf_pre"], "llama-bpe");
  EXPECT_EQ(tok["add_space_prefix"], 1);
  EXPECT_EQ(tok["files_sha256"]["tokenizer_model"], sha256_hex(d.tokenizer.tokenizer_model));
  EXPECT_EQ(tok["files_sha256"]["tokenizer_json"], sha256_hex(d.tokenizer.tokenizer_json));
  EXPECT_FALSE(tok["files_sha256"].contains("special_tokens_map_json"));
  EXPECT_EQ(j["chat_template"], d.chat_template);
  EXPECT_EQ(j["provenance"]["files"].get<std::vector<std::string>>(), d.provenance.files);
  EXPECT_EQ(j["provenance"]["created_utc"], d.provenance.created_utc);

  std::vector<std::string> names;
  for (const auto& t : ts) names.push_back(t.info.name);
  EXPECT_EQ(j["tensor_names"].get<std::vector<std::string>>(), names);
  EXPECT_EQ(j["tensors_iteration_order"].get<std::vector<std::string>>(), names);  // creation order tracked
  for (const auto& t : ts) {
    SCOPED_TRACE(t.info.name);
    const Json& jt = j["tensors"][t.info.name];
    EXPECT_EQ(jt["dtype_attr"], std::string(dtype_name(t.info.dtype)));
    const char* np = t.info.dtype == DType::kF32 ? "float32" : t.info.dtype == DType::kF16 ? "float16"
                     : t.info.dtype == DType::kBF16 ? "uint16" : "int32";
    EXPECT_EQ(jt["numpy_dtype"], np);
    EXPECT_EQ(jt["shape"].get<std::vector<int64_t>>(), t.info.shape);
    EXPECT_EQ(jt["sha256"], sha256_hex({reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size()}));
    const bool chunked = t.info.nbytes > 0 && !t.info.shape.empty();
    EXPECT_EQ(jt["compression_filters"].size(), compressed && chunked ? 2u : 0u);  // shuffle + zstd
  }
  // 3 MiB tensor: chunks of ~2 MiB along the first dim, equal-sized.
  EXPECT_EQ(j["tensors"]["a.big_compressible"]["chunks"], (std::vector<int>{384, 1024}));
}

class CheckpointH5py : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_checkpoint(plain(), 0, make_description(), make_tensors());
    write_checkpoint(pieces(), 0, make_description(), make_tensors(), /*in_pieces=*/true);
    write_checkpoint(zstd(), 3, make_description(), make_tensors());
    std::filesystem::create_directories(no_plugins());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string plain() { return *dir_ / "plain.h5"; }
  static std::string zstd() { return *dir_ / "zstd.h5"; }
  static std::string pieces() { return *dir_ / "pieces.h5"; }
  static std::string no_plugins() { return *dir_ / "empty-plugin-dir"; }
  static std::string plugins() { return test::build_dir() + "/hdf5-plugins"; }
  static TempDir* dir_;
};
TempDir* CheckpointH5py::dir_ = nullptr;

TEST_F(CheckpointH5py, ReadsUncompressedWithoutPlugin) { check_with_h5py(plain(), no_plugins(), false); }

// Bytes copied straight into early-allocated chunks (convert's path) read the same in h5py.
TEST_F(CheckpointH5py, ReadsChunksWrittenInPlace) { check_with_h5py(pieces(), no_plugins(), false); }

TEST_F(CheckpointH5py, ReadsZstdThroughPlugin) { check_with_h5py(zstd(), plugins(), true); }

TEST_F(CheckpointH5py, ZstdNeedsPluginAndIsSmaller) {
  // Proves the filter is really applied: without the plugin, HDF5 cannot decode the chunks.
  auto res = run_h5py(zstd(), no_plugins());
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_NE(res.err.find("filter"), std::string::npos) << res.err;
  const auto plain_size = std::filesystem::file_size(plain()), zstd_size = std::filesystem::file_size(zstd());
  // 3 MiB of 17 distinct floats compress to a few KiB; the random 3 MB bf16 barely. Expect
  // at least 2.5 MB saved.
  EXPECT_LT(zstd_size + 2500000, plain_size) << "zstd " << zstd_size << " vs plain " << plain_size;
}

TEST_F(CheckpointH5py, H5dumpListsHeader) {
  if (test::run_shell("command -v h5dump").exit_code != 0) GTEST_SKIP() << "h5dump not installed";
  auto res = test::run_shell(cat("HDF5_PLUGIN_PATH='", no_plugins(), "' h5dump -A '", zstd(), "'"));
  EXPECT_EQ(res.exit_code, 0) << res.err;
  EXPECT_NE(res.out.find("temper-checkpoint"), std::string::npos) << res.out;
  EXPECT_NE(res.out.find("DATASET \"model.embed_tokens.weight\""), std::string::npos);
  EXPECT_NE(res.out.find("H5T_STD_U16LE"), std::string::npos);
}

// Gemma-sized vocabulary (262144 tokens, 150k merges): must round-trip exactly and quickly
// (vlen strings are written and read in one call each; this test takes well under a second).
TEST(CheckpointTokenizer, LargeVocabularyRoundTrips) {
  TempDir dir;
  ModelDescription d = make_description();
  std::mt19937 rng(7);
  auto& t = d.tokenizer;
  t.tokens.resize(262144);
  t.scores.resize(t.tokens.size());
  t.token_types.resize(t.tokens.size());
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    t.tokens[i] = cat("▁tok", i, i % 3 ? "ß" : "");
    t.scores[i] = -float(i);
    t.token_types[i] = int32_t(1 + i % 6);
  }
  t.merges.resize(150000);
  for (size_t i = 0; i < t.merges.size(); ++i) t.merges[i] = cat("a", rng() % 1000, " b", i);
  const std::string path = dir / "vocab.h5";
  write_checkpoint(path, 0, d, {});
  CheckpointReader r(path, CheckpointCheck::kLayoutOnly);  // the description is not a runnable model
  EXPECT_EQ(r.description().tokenizer.tokens, t.tokens);
  EXPECT_EQ(r.description().tokenizer.scores, t.scores);
  EXPECT_EQ(r.description().tokenizer.token_types, t.token_types);
  EXPECT_EQ(r.description().tokenizer.merges, t.merges);
  EXPECT_TRUE(r.tensors().empty());
}

// --- malformed files and writer misuse

std::string write_small(const TempDir& dir, const std::string& name) {
  const std::string path = dir / name;
  write_checkpoint(path, 0, make_description(), {make_tensor("w", DType::kF32, {2}, as_bytes(std::vector<float>{1, 2}))});
  return path;
}

TEST(CheckpointErrors, NewerFormatVersionIsRefused) {
  TempDir dir;
  const std::string path = write_small(dir, "newer.h5");
  auto res = test::run_shell(cat(TEMPER_PYTHON, " -c \"import h5py, numpy as np; f = h5py.File('", path,
                                 "', 'r+'); f.attrs['format_version'] = np.int32(", kCheckpointFormatVersion + 1, ")\""));
  ASSERT_EQ(res.exit_code, 0) << res.err;
  expect_error([&] { CheckpointReader r(path); },
               {path, cat("format_version ", kCheckpointFormatVersion + 1), "newer temper"});
}

TEST(CheckpointErrors, WrongFormatAndMissingObjectsAreNamed) {
  TempDir dir;
  const std::string other = dir / "other.h5";
  ASSERT_EQ(test::run_shell(cat(TEMPER_PYTHON, " -c \"import h5py; h5py.File('", other,
                                "', 'w', libver=('v110', 'v110')).attrs['x'] = 1\"")).exit_code, 0);
  expect_error([&] { CheckpointReader r(other); }, {other, "not a temper checkpoint"});

  const std::string path = write_small(dir, "m.h5");
  ASSERT_EQ(test::run_shell(cat(TEMPER_PYTHON, " -c \"import h5py; f = h5py.File('", path,
                                "', 'r+'); del f['config'].attrs['d_model']\"")).exit_code, 0);
  expect_error([&] { CheckpointReader r(path); }, {path, "/config attribute 'd_model'", "missing"});

  const std::string text = dir / "text.h5";
  test::write_file(text, "not hdf5 at all");
  expect_error([&] { CheckpointReader r(text); }, {text, "not an HDF5 file"});
  expect_error([&] { CheckpointReader r(dir / "absent.h5"); }, {"absent.h5", "no such file"});
}

TEST(CheckpointErrors, TruncatedFileIsAnErrorNotACrash) {
  TempDir dir;
  const std::string path = write_small(dir, "t.h5");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  expect_error([&] { CheckpointReader r(path); }, {path});
}

TEST(CheckpointErrors, UnfinishedWriterLeavesAnIncompleteFile) {
  TempDir dir;
  const std::string path = dir / "partial.h5";
  {
    CheckpointWriter w(path, {});
    w.write_description(make_description());
    w.write_tensor(make_tensor("w", DType::kF32, {1}, as_bytes(std::vector<float>{1})).info,
                   as_bytes(std::vector<float>{1}));
  }  // destroyed without close()
  expect_error([&] { CheckpointReader r(path); }, {path, "/tensor_names", "incomplete"});
}

TEST(CheckpointErrors, WriterRejectsBadTensors) {
  TempDir dir;
  CheckpointWriter w(dir / "bad.h5", {});
  auto t = make_tensor("x", DType::kF32, {2}, as_bytes(std::vector<float>{1, 2}));
  w.write_tensor(t.info, t.bytes);
  expect_error([&] { w.write_tensor(t.info, t.bytes); }, {"bad.h5", "tensor 'x'", "twice"});
  auto short_data = t;
  short_data.info.name = "y";
  expect_error([&] { w.write_tensor(short_data.info, std::span(t.bytes).first(4)); }, {"tensor 'y'", "8 bytes"});
  auto slash = t;
  slash.info.name = "a/b";
  expect_error([&] { w.write_tensor(slash.info, t.bytes); }, {"'a/b'", "'/'"});
  TensorInfo q{"q", DType::kQ8_0, {32}, 34};
  expect_error([&] { w.write_tensor(q, std::vector<uint8_t>(34)); }, {"tensor 'q'", "q8_0"});
  expect_error([&] { w.close(); }, {"without write_description"});
  expect_error([&] { CheckpointWriter bad(dir / "lvl.h5", {23}); }, {"zstd level 23"});
}

// A write that runs out of file size (as on a full disk) must end in an Error naming the file,
// not a crash or a silent success. Run in a forked child with RLIMIT_FSIZE and SIGXFSZ ignored,
// so write(2) fails with EFBIG.
// Tensors written in pieces get their blocks reserved (fallocate) before the copy, and only
// the blocks HDF5 allocated for them. Checked before close(): at close HDF5 truncates the file
// to its allocation, which would hide a reservation that reached past it.
TEST(CheckpointWriter, ReservesNoBlocksPastTheAllocation) {
  TempDir dir;
  const std::string path = dir / "m.h5";
  const auto t = make_tensor("big", DType::kBF16, {3, 1 << 20}, random_bytes(6 << 20, 6));
  CheckpointWriter w(path, {});
  w.write_description(make_description());
  w.write_tensor(t.info, [&](uint64_t offset, uint64_t max_len) {
    return std::span<const uint8_t>(t.bytes.data() + offset, size_t(std::min<uint64_t>(max_len, 1 << 16)));
  });
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  const uint64_t written = uint64_t(st.st_size), blocks = uint64_t(st.st_blocks) * 512;
  EXPECT_GE(written, t.bytes.size());
  // Slack for the metadata HDF5 has allocated but not yet written.
  EXPECT_LE(blocks, (written + 4095) / 4096 * 4096 + (64 << 10)) << "file size " << written;
  w.close();
}

TEST(CheckpointErrors, DiskFullIsAnError) {
  TempDir dir;
  const std::string path = dir / "full.h5";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{256 * 1024, 256 * 1024};
    setrlimit(RLIMIT_FSIZE, &lim);
    std::string msg;
    int code = 3;
    try {
      auto t = make_tensor("big", DType::kBF16, {1 << 20}, random_bytes(2 << 20, 5));
      CheckpointWriter w(path, {});
      w.write_description(make_description());
      w.write_tensor(t.info, t.bytes);
      w.close();
      msg = "no error";
    } catch (const Error& e) {
      msg = e.what();
      code = 0;
    } catch (...) {
      msg = "other exception";
      code = 4;
    }
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(code);
  }
  close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died with signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  std::cerr << "disk-full error message: " << msg << "\n";
}

}  // namespace
}  // namespace temper
