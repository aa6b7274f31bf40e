// The forward pass on stories260K (a real trained llama2.c model converted to HF) against the
// fixture's float64 numpy reference: logits at 64 positions for f32/bf16/f16 weights,
// perplexity on the TinyStories sample, and batch == incremental (KV cache) evaluation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "formats/safetensors.h"
#include "forward/forward.h"
#include "forward/weights.h"
#include "model/model_desc.h"
#include "util/test_util.h"

namespace temper::forward {
namespace {

std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = test::read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

struct Loaded {
  std::unique_ptr<SafetensorsModel> src;
  std::unique_ptr<Model> model;
};

Loaded load(const std::string& variant) {
  const std::string dir = test::fixture("model/stories260K-hf-" + variant);
  Loaded l;
  l.src = SafetensorsModel::open(dir);
  l.model = Model::load(*l.src, load_hf_description(dir));
  return l;
}

Json read_json(const std::string& rel) {
  return parse_json(read_text_file(test::fixture(rel)), test::fixture(rel));
}

std::vector<int32_t> meta_tokens() {
  const Json meta = read_json("model/reference/logits_meta.json");
  std::vector<int32_t> ids;
  for (const auto& v : meta["tokens"]) ids.push_back(v.get<int32_t>());
  return ids;
}

// Logits of the fixture's 64 tokens vs numpy float64 on the same stored weights. The model
// has 5 layers of K <= 172 products; fp32 rounding gives a relative error of order
// K eps ~ 1e-5 per product, growing mildly through the layers; logits are O(10), so 2e-4
// absolute (about 20x the K eps bound on one product of O(10) terms) is tight yet safe.
// Observed max errors are reported on every run.
TEST(ForwardStories260K, LogitsMatchFloat64Reference) {
  const std::vector<int32_t> ids = meta_tokens();
  ASSERT_EQ(ids.size(), 64u);
  for (const char* variant : {"f32", "bf16", "f16"}) {
    Loaded l = load(variant);
    Session s(*l.model, 128);
    const std::vector<float> got = s.eval(ids);
    const std::vector<float> want =
        read_f32(test::fixture(std::string("model/reference/logits_") + variant + "_64x512.f32"));
    ASSERT_EQ(got.size(), want.size());
    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_err = std::max(max_err, std::fabs(double(got[i]) - want[i]));
      max_ref = std::max(max_ref, std::fabs(double(want[i])));
    }
    std::printf("stories260K %s: max |logit - ref| = %.3g (max |ref| %.3g)\n", variant, max_err,
                max_ref);
    EXPECT_LT(max_err, 2e-4) << variant;
  }
}

// Perplexity by the fixture's protocol: windows of [BOS] + 127 text tokens, non-overlapping,
// every next-token prediction scored, natural log. Token ids of the text are the fixture's
// encoding of tinystories_sample.txt (tokenizer_json_encodings.lenml.json), whose first 63
// must equal the logits fixture's tokens. The mean NLL is an average of ~1900 log-probs
// each off by < 2e-4 (the logits bound above): 1e-5 relative on the PPL is ample.
TEST(ForwardStories260K, PerplexityMatchesReference) {
  const std::string text = read_text_file(test::fixture("text/tinystories_sample.txt"));
  std::vector<int32_t> ids;
  const Json encodings = read_json("model/reference/tokenizer_json_encodings.lenml.json");
  for (const auto& c : encodings)
    if (c["text"] == text)
      for (const auto& v : c["ids"]) ids.push_back(v.get<int32_t>());
  const Json ref = read_json("model/reference/ppl_kl_tinystories_sample.json");
  ASSERT_EQ(int(ids.size()), ref["n_text_tokens"].get<int>());
  const std::vector<int32_t> meta = meta_tokens();
  ASSERT_TRUE(std::equal(meta.begin() + 1, meta.end(), ids.begin()));
  const int ctx = ref["ctx"].get<int>();

  for (const char* variant : {"f32", "bf16", "f16"}) {
    Loaded l = load(variant);
    Session s(*l.model, ctx);
    double nll = 0;
    int n = 0;
    for (size_t start = 0; start < ids.size(); start += ctx - 1) {
      std::vector<int32_t> chunk = {1};
      for (size_t i = start; i < std::min(ids.size(), start + ctx - 1); ++i)
        chunk.push_back(ids[i]);
      s.reset();
      const std::vector<float> logits = s.eval(chunk);
      const int V = l.model->config().n_vocab;
      for (size_t t = 0; t + 1 < chunk.size(); ++t) {
        const float* row = &logits[t * V];
        double mx = row[0], z = 0;
        for (int i = 1; i < V; ++i) mx = std::max(mx, double(row[i]));
        for (int i = 0; i < V; ++i) z += std::exp(row[i] - mx);
        nll -= row[chunk[t + 1]] - mx - std::log(z);
        ++n;
      }
    }
    const Json& m = ref["models"][std::string("stories260K-hf-") + variant];
    const double ppl = std::exp(nll / n), want = m["ppl"].get<double>();
    std::printf("stories260K %s: ppl %.9f, reference %.9f, rel diff %.3g\n", variant, ppl, want,
                std::fabs(ppl - want) / want);
    EXPECT_EQ(n, m["n_scored"].get<int>());
    EXPECT_NEAR(ppl, want, 1e-5 * want) << variant;
  }
}

// The same 64 tokens as one batch, one token at a time, and in uneven chunks through the KV
// cache. Only sgemm's kernels differ between M = 64 and M = 1 (blocking, FMA use), so both
// runs are fp32 approximations of the same exact logits, each within the bound of the first
// test; observed they differ by ~8 ulps of the largest logit. Allowed: 32 ulps of max|logit|,
// i.e. 4e-6 relative to max|logit|.
TEST(ForwardStories260K, BatchEqualsIncremental) {
  const std::vector<int32_t> ids = meta_tokens();
  Loaded l = load("bf16");
  const int V = l.model->config().n_vocab;
  Session batch(*l.model, 64);
  const std::vector<float> all = batch.eval(ids);
  double max_abs = 0;
  for (float v : all) max_abs = std::max(max_abs, double(std::fabs(v)));
  for (std::vector<size_t> cuts : {std::vector<size_t>{}, std::vector<size_t>{10, 11, 40}}) {
    Session inc(*l.model, 64);
    std::vector<float> got;
    size_t at = 0;
    auto feed = [&](size_t end) {
      const std::vector<float> part = inc.eval(std::span(ids).subspan(at, end - at));
      got.insert(got.end(), part.begin(), part.end());
      at = end;
    };
    if (cuts.empty()) {
      for (size_t t = 0; t < ids.size(); ++t) feed(t + 1);
    } else {
      for (size_t c : cuts) feed(c);
      feed(ids.size());
    }
    ASSERT_EQ(got.size(), all.size());
    double max_err = 0;
    for (size_t i = 0; i < got.size(); ++i)
      max_err = std::max(max_err, std::fabs(double(got[i]) - all[i]));
    std::printf("stories260K batch vs incremental (%zu cuts): max diff %.3g\n", cuts.size(),
                max_err);
    EXPECT_LT(max_err, 4e-6 * max_abs);
  }
  // Last-row mode equals the last row of the full logits (up to the same sgemm M effect).
  Session last(*l.model, 64);
  const std::vector<float> tail = last.eval(ids, false);
  ASSERT_EQ(int(tail.size()), V);
  for (int i = 0; i < V; ++i) ASSERT_NEAR(tail[i], all[(ids.size() - 1) * V + i], 4e-6 * max_abs);
  EXPECT_THROW(last.eval(ids), Error);  // 64 + 64 > n_ctx
}

// A source without a mapping (like the HDF5 checkpoint) reads every tensor into the caller's
// scratch; the model must keep one copy of each tensor's bytes and compute the same logits
// bit for bit as from the mapped safetensors.
class CopyingSource : public TensorSource {
 public:
  explicit CopyingSource(const TensorSource& inner) : inner_(inner) {}
  const std::vector<TensorInfo>& tensors() const override { return inner_.tensors(); }
  std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>& scratch) const override {
    std::vector<uint8_t> unused;
    const std::span<const uint8_t> s = inner_.read(t, unused);
    scratch.assign(s.begin(), s.end());
    ++reads_;
    return scratch;
  }
  mutable int reads_ = 0;

 private:
  const TensorSource& inner_;
};

TEST(ForwardStories260K, ScratchReadingSourceGivesIdenticalLogits) {
  const std::vector<int32_t> ids = meta_tokens();
  Loaded mapped = load("bf16");
  CopyingSource copying(*mapped.src);
  auto model = Model::load(copying, load_hf_description(test::fixture("model/stories260K-hf-bf16")));
  EXPECT_EQ(copying.reads_, int(mapped.src->tensors().size()));
  EXPECT_EQ(model->weights().owned.size(), mapped.src->tensors().size());
  Session a(*mapped.model, 64), b(*model, 64);
  EXPECT_EQ(a.eval(ids), b.eval(ids));
}

// Fused projections (TensorRole::kAttnQkv, kFfnGateUp; Phi-3's qkv_proj and gate_up_proj):
// stories260K's q/k/v and gate/up rows stacked into one tensor each, under a copy of the Llama
// table with fused rows, bind as row views of the one tensor and give the split model's logits.
class FusingSource : public TensorSource {
 public:
  FusingSource(const TensorSource& split, int n_layer) {
    auto bytes = [&](const std::string& name) {
      std::vector<uint8_t> scratch;
      const TensorInfo* t = split.find(name);
      EXPECT_NE(t, nullptr) << name;
      const auto s = split.read(*t, scratch);
      return std::pair{*t, std::vector<uint8_t>(s.begin(), s.end())};
    };
    auto fuse = [&](const std::string& name, const std::vector<std::string>& parts) {
      TensorInfo info = bytes(parts[0]).first;
      info.name = name;
      info.shape[0] = 0;
      std::vector<uint8_t> all;
      for (const auto& p : parts) {
        auto [t, b] = bytes(p);
        info.shape[0] += t.shape[0];
        all.insert(all.end(), b.begin(), b.end());
      }
      info.nbytes = all.size();
      add(info, std::move(all));
    };
    for (const TensorInfo& t : split.tensors()) {
      bool fused_part = false;
      for (const char* part : {".q_proj.", ".k_proj.", ".v_proj.", ".gate_proj.", ".up_proj."})
        fused_part = fused_part || t.name.find(part) != std::string::npos;
      if (!fused_part) add(t, bytes(t.name).second);
    }
    for (int l = 0; l < n_layer; ++l) {
      const std::string p = "model.layers." + std::to_string(l);
      fuse(p + ".self_attn.qkv_proj.weight",
           {p + ".self_attn.q_proj.weight", p + ".self_attn.k_proj.weight", p + ".self_attn.v_proj.weight"});
      fuse(p + ".mlp.gate_up_proj.weight", {p + ".mlp.gate_proj.weight", p + ".mlp.up_proj.weight"});
    }
  }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  std::span<const uint8_t> read(const TensorInfo& t, std::vector<uint8_t>&) const override {
    return data_.at(t.name);
  }

 private:
  void add(const TensorInfo& t, std::vector<uint8_t> b) {
    infos_.push_back(t);
    data_.emplace(t.name, std::move(b));
  }
  std::vector<TensorInfo> infos_;
  std::map<std::string, std::vector<uint8_t>> data_;
};

TEST(ForwardFusedProjections, BindAsRowViewsAndMatchSplitLogits) {
  const std::vector<int32_t> ids = meta_tokens();
  Loaded split = load("f32");
  const ModelDescription split_desc = load_hf_description(test::fixture("model/stories260K-hf-f32"));
  const ModelConfig& cfg = split_desc.config;

  std::vector<TensorSpec> table;
  for (const TensorSpec& t : split_desc.arch->tensors) {
    const TensorRole r = t.role;
    if (r != TensorRole::kAttnQ && r != TensorRole::kAttnK && r != TensorRole::kAttnV && r != TensorRole::kFfnGate &&
        r != TensorRole::kFfnUp)
      table.push_back(t);
  }
  table.push_back({.role = TensorRole::kAttnQkv, .hf_name = "model.layers.{L}.self_attn.qkv_proj.weight",
                   .gguf_name = "blk.{L}.attn_qkv.weight", .flags = kPerLayer, .quant_class = QuantClass::kAttnQkv,
                   .shape = [](const ModelConfig& c, int l) -> std::vector<int64_t> {
                     const LayerConfig& L = c.layers[l];
                     return {int64_t(L.n_head + 2 * L.n_head_kv) * L.head_dim, c.d_model};
                   }});
  table.push_back({.role = TensorRole::kFfnGateUp, .hf_name = "model.layers.{L}.mlp.gate_up_proj.weight",
                   .gguf_name = "blk.{L}.ffn_up.weight", .flags = kPerLayer, .quant_class = QuantClass::kFfnUp,
                   .shape = [](const ModelConfig& c, int l) -> std::vector<int64_t> {
                     return {2 * int64_t(c.layers[l].d_ff), c.d_model};
                   }});
  ArchSpec fused_arch = *split_desc.arch;
  fused_arch.tensors = table;
  ModelDescription fused_desc = split_desc;
  fused_desc.arch = &fused_arch;

  FusingSource fusing(*split.src, cfg.n_layer);
  auto fused = Model::load(fusing, fused_desc);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerWeights& F = fused->weights().layers[l];
    const LayerWeights& S = split.model->weights().layers[l];
    const LayerConfig& L = cfg.layers[l];
    // Row blocks of one tensor, in q, k, v and gate, up order, each the split tensor's shape.
    EXPECT_EQ(F.wk.data, F.wq.data + F.wq.row_bytes * L.n_head * L.head_dim);
    EXPECT_EQ(F.wv.data, F.wk.data + F.wk.row_bytes * L.n_head_kv * L.head_dim);
    EXPECT_EQ(F.ffn_up.data, F.ffn_gate.data + F.ffn_gate.row_bytes * L.d_ff);
    const std::pair<const Matrix*, const Matrix*> blocks[] = {
        {&F.wq, &S.wq}, {&F.wk, &S.wk}, {&F.wv, &S.wv}, {&F.ffn_gate, &S.ffn_gate}, {&F.ffn_up, &S.ffn_up}};
    for (auto [f, s] : blocks) {
      EXPECT_EQ(f->rows, s->rows);
      EXPECT_EQ(f->cols, s->cols);
      EXPECT_EQ(std::memcmp(f->data, s->data, s->row_bytes * size_t(s->rows)), 0);
    }
    // The whole tensor is named once, by its first block.
    const MatrixName* qkv = find_matrix(fused->weights(), F.wq);
    ASSERT_NE(qkv, nullptr);
    EXPECT_EQ(qkv->gguf_name, "blk." + std::to_string(l) + ".attn_qkv.weight");
    EXPECT_EQ(find_matrix(fused->weights(), F.wk), nullptr);
  }
  Session a(*split.model, 64), b(*fused, 64);
  const std::vector<float> want = a.eval(ids), got = b.eval(ids);
  ASSERT_EQ(got.size(), want.size());
  double max_abs = 0, max_err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_abs = std::max(max_abs, double(std::fabs(want[i])));
    max_err = std::max(max_err, double(std::fabs(got[i] - want[i])));
  }
  // The same values in the same order: only a GEMM's choice of kernel by output width could
  // round differently, so 1e-6 of the largest logit.
  EXPECT_LE(max_err, 1e-6 * max_abs);
}

}  // namespace
}  // namespace temper::forward
