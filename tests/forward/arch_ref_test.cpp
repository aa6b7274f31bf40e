// Every architecture's tiny random checkpoint (scripts/tiny_models.py, bf16) through the
// forward pass against an independent PyTorch float64 implementation of the HF semantics
// (tests/forward/torch_ref.py), plus batch == incremental evaluation through the KV cache
// (which exercises sliding windows, KV sharing and MoE routing across calls).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/file.h"
#include "core/json.h"
#include "formats/safetensors.h"
#include "forward/forward.h"
#include "model/model_desc.h"
#include "util/test_util.h"

namespace temper::forward {
namespace {

// Every tiny model (scripts/tiny_models.py --list): a new architecture is checked here as soon
// as it has one.
std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const auto& [name, arch] : test::tiny_models()) out.push_back(name);
  return out;
}

// 48 tokens: longer than the sliding windows of the tiny gemma configs (16 and 32).
std::vector<int32_t> test_tokens() {
  const Json meta = parse_json(read_text_file(test::fixture("model/reference/logits_meta.json")),
                               "logits_meta.json");
  std::vector<int32_t> ids;
  for (const auto& v : meta["tokens"]) ids.push_back(v.get<int32_t>());
  ids.resize(48);
  return ids;
}

// Generates the tiny checkpoints and the PyTorch logits once per process (ctest runs each
// test in its own process, so everything lives in one test).
struct References {
  test::TempDir dir;
  References() {
    std::string tokens;
    for (int32_t id : test_tokens()) tokens += (tokens.empty() ? "" : ",") + std::to_string(id);
    const std::string py = TEMPER_PYTHON;
    auto r = test::run_shell(py + " " + test::source_dir() + "/scripts/tiny_models.py " +
                             dir.path() + "/models");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string models;
    for (const std::string& m : model_names()) models += " " + dir.path() + "/models/" + m;
    r = test::run_shell(py + " " + test::source_dir() + "/tests/forward/torch_ref.py --tokens " +
                        tokens + " --out " + dir.path() + models);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Tolerance: the reference is float64 on the same stored weights, so the error is temper's
// fp32 rounding: ~K eps relative per product (K <= 256 here: ~3e-5) through <= 6 layers of
// O(1) activations; logits are O(1..30). 1e-3 absolute leaves ~10x margin over the observed
// worst case while any semantic slip (a missed norm, wrong RoPE pairing, window off by one,
// wrong expert) moves logits by >= 1e-2.
void check_model(const References& refs, const std::string& name) {
  SCOPED_TRACE(name);
  const std::string model_dir = refs.dir.path() + "/models/" + name;
  auto src = SafetensorsModel::open(model_dir);
  auto model = Model::load(*src, load_hf_description(model_dir));
  const std::vector<int32_t> ids = test_tokens();
  Session s(*model, 64);
  const std::vector<float> got = s.eval(ids);
  const std::string bytes = test::read_file(refs.dir.path() + "/" + name + ".f32");
  std::vector<float> want(bytes.size() / 4);
  std::memcpy(want.data(), bytes.data(), want.size() * 4);
  ASSERT_EQ(got.size(), want.size());
  double max_ref = 0;
  for (float v : want) max_ref = std::max(max_ref, double(std::fabs(v)));
  const double err = max_abs_diff(got, want);
  std::printf("%s: max |logit - torch| = %.3g (max |logit| %.3g)\n", name.c_str(), err, max_ref);
  EXPECT_LT(err, 1e-3);

  // Token by token, then in two uneven chunks, through the KV cache. Differences come only
  // from sgemm's kernels at M = 1 vs M = 48 (blocking, FMA): both runs are fp32
  // approximations of the same logits (each within the bound above); observed <= 2.5e-6
  // relative to max|logit|. Allowed: 1e-5 relative (~80 ulps of the largest logit).
  Session inc(*model, 64);
  std::vector<float> one;
  for (size_t t = 0; t < ids.size(); ++t) {
    const auto part = inc.eval(std::span(ids).subspan(t, 1));
    one.insert(one.end(), part.begin(), part.end());
  }
  Session chunks(*model, 64);
  std::vector<float> two = chunks.eval(std::span(ids).first(19));
  const auto rest = chunks.eval(std::span(ids).subspan(19));
  two.insert(two.end(), rest.begin(), rest.end());
  const double d1 = max_abs_diff(one, got), d2 = max_abs_diff(two, got);
  std::printf("%s: batch vs token-by-token %.3g, vs chunks %.3g\n", name.c_str(), d1, d2);
  EXPECT_LT(d1, 1e-5 * max_ref);
  EXPECT_LT(d2, 1e-5 * max_ref);
}

TEST(ForwardArchRef, TinyModelsMatchTorchReference) {
  const References refs;
  ASSERT_FALSE(HasFailure());
  for (const std::string& name : model_names()) check_model(refs, name);
}

}  // namespace
}  // namespace temper::forward
