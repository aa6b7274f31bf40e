// The forward pass on stories260K (a real trained llama2.c model converted to HF) against the
// fixture's float64 numpy reference: logits at 64 positions for f32/bf16/f16 weights,
// perplexity on the TinyStories sample, and batch == incremental (KV cache) evaluation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

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

}  // namespace
}  // namespace temper::forward
