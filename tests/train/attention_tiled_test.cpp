// The tiled attention kernels (forward::attention_forward_masked, train::attention_backward)
// against two references on many shapes: the scalar implementations they replaced
// (attention_*_reference, f32 with double accumulators) and an independent float64 PyTorch
// reference (attention_torch_ref.py: softmax by definition, gradients by autograd). Shapes:
// odd token counts around the 64-key / 64-row tiles, a KV cache (pos0 > 0), GQA groups
// 1/2/3/4, head_dim 64/128/80, windows 0/1/5/larger than T, packed examples whose
// boundaries fall inside tiles, and the log-sum-exp output.
//
// Bounds (u = 2^-24 is f32's unit roundoff; eps = 2u is used throughout, a factor 2 of
// headroom). A score is an HD-term f32 dot product times scale: |error| <= HD eps S with
// S = max scale Σ_d |q_d k_d| over visible pairs (Higham's γ_HD, any summation order). A
// weight P = exp(s - m) / l then has relative error <= 2 HD eps S (two scores) + ~4 eps (exp,
// the running-max rescales) + n_keys eps (the f32 denominator, a sum of n_keys positive
// terms). An output O = Σ_j P_j V_j adds n_keys eps relative to Σ_j P_j |V_j| <= max|V|:
//   |O - O_ref| <= (2 HD S + 2 n_keys + 4) eps max|V|.
// The log-sum-exp m + log l: |error| <= (HD S + n_keys + 4) eps + eps |lse|.
// Gradients (FlashAttention-2 recomputation from the f32 lse): P's relative error is
// (HD S + |lse| + 4) eps; each gradient is a sum of <= T x group terms (dq over keys, dk and
// dv over queries x the group's heads), each a product of P, (dP - D) and one operand. dP is
// an HD-term dot and D = dO·O carries O's error (the forward bound), both absolute errors that
// do not shrink when dP - D cancels, so they count against A_ij = Σ_d |dO_id| (|V_jd| + max|V|):
//   |g - g_ref| <= (2 HD S + |lse| + 2 HD + 2 T + T group + 8) eps G
// with G = Σ over the gradient's terms of P (|dP - D| + A) |operand| (the PyTorch script's
// magnitude scales). Against the scalar reference, whose own error obeys the same bound,
// twice the bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "forward/attention_reference.h"
#include "forward/layers.h"
#include "grad_check.h"
#include "train/attention_reference.h"
#include "train/kernels.h"
#include "util/test_util.h"

namespace temper::train {
namespace {

using test::expect_close;
using test::kEps32;
using test::randn_f32;
using test::to_f32;

struct Shape {
  int64_t T, pos0;
  int NH, NKV, HD, window;
  bool packed;
  std::string name() const {
    return "T " + std::to_string(T) + " pos0 " + std::to_string(pos0) + " heads " +
           std::to_string(NH) + "/" + std::to_string(NKV) + " hd " + std::to_string(HD) +
           " window " + std::to_string(window) + (packed ? " packed" : "");
  }
};

std::vector<Shape> shapes() {
  const int heads[][2] = {{2, 2}, {4, 2}, {12, 4}, {8, 2}};  // groups 1, 2, 3, 4
  const int hds[] = {64, 128, 80};
  std::vector<Shape> s;
  int c = 0;
  for (int64_t T : {1, 7, 63, 65, 200})
    for (int window : {0, 1, 5, 1000})
      for (bool packed : {false, true}) {
        const auto& h = heads[c % 4];
        // Every second case decodes against a cache: forward only (training has pos0 = 0).
        s.push_back({T, c % 2 ? 37 : 0, h[0], h[1], hds[(c / 4) % 3], window, packed});
        ++c;
      }
  s.push_back({512, 0, 12, 4, 128, 0, true});  // the 0.5B Llama shape bench_train.py times
  return s;
}

// Example starts for packed sequences: lengths 5, 30, 17, 70, 11, ... so boundaries land at
// odd places inside 64-key and 21-token tiles. Starts are cache positions (pos0 + t).
std::vector<int32_t> example_starts(int64_t T, int64_t pos0) {
  const int lengths[] = {5, 30, 17, 70, 11, 43};
  std::vector<int32_t> first(static_cast<size_t>(T));
  int64_t start = std::max<int64_t>(0, pos0 - 10), next = start + lengths[0];
  int li = 0;
  for (int64_t t = 0; t < T; ++t) {
    while (pos0 + t >= next) start = next, next += lengths[++li % 6];
    first[size_t(t)] = int32_t(start);
  }
  return first;
}

struct Case {
  Shape sh;
  std::vector<double> q, k, v, dout;
  std::vector<int32_t> first;
  float scale;
  // float64 reference results
  std::vector<double> out, lse, dq, dk, dv;
  double score = 0, gq = 0, gk = 0, gv = 0;
};

void write_case(const Case& c, const std::string& path) {
  std::string b;
  const int32_t hdr[7] = {int32_t(c.sh.T), int32_t(c.sh.pos0), c.sh.NH, c.sh.NKV, c.sh.HD,
                          c.sh.window, c.sh.packed};
  b.append(reinterpret_cast<const char*>(hdr), sizeof hdr);
  b.append(reinterpret_cast<const char*>(&c.scale), 4);
  for (const auto* a : {&c.q, &c.k, &c.v, &c.dout}) {
    const auto f = to_f32(*a);
    b.append(reinterpret_cast<const char*>(f.data()), f.size() * 4);
  }
  if (c.sh.packed) b.append(reinterpret_cast<const char*>(c.first.data()), c.first.size() * 4);
  ::temper::test::write_file(path, b);
}

void read_ref(Case& c, const std::string& path) {
  const std::string b = ::temper::test::read_file(path);
  size_t off = 0;
  auto take = [&](size_t n) {
    std::vector<double> v(n);
    EXPECT_LE(off + n * 8, b.size()) << path;
    if (off + n * 8 <= b.size()) std::memcpy(v.data(), b.data() + off, n * 8);
    off += n * 8;
    return v;
  };
  c.out = take(c.q.size());
  c.lse = take(size_t(c.sh.T * c.sh.NH));
  c.score = take(1)[0];
  if (c.sh.pos0 == 0) {
    c.dq = take(c.q.size()), c.dk = take(c.k.size()), c.dv = take(c.v.size());
    const auto g = take(3);
    c.gq = g[0], c.gk = g[1], c.gv = g[2];
  }
  EXPECT_EQ(off, b.size()) << path;
}

// Builds every case, runs the PyTorch reference on all of them in one process.
std::vector<Case> cases_with_references(const ::temper::test::TempDir& dir) {
  std::vector<Case> cases;
  std::string args;
  uint32_t seed = 100;
  for (const Shape& sh : shapes()) {
    Case c{sh};
    const int64_t n_pos = sh.pos0 + sh.T;
    c.q = randn_f32(size_t(sh.T * sh.NH * sh.HD), seed++);
    c.k = randn_f32(size_t(n_pos * sh.NKV * sh.HD), seed++);
    c.v = randn_f32(size_t(n_pos * sh.NKV * sh.HD), seed++);
    c.dout = randn_f32(size_t(sh.T * sh.NH * sh.HD), seed++);
    c.first = example_starts(sh.T, sh.pos0);
    c.scale = 1.0f / std::sqrt(float(sh.HD));
    const std::string path = dir / ("case" + std::to_string(cases.size()) + ".bin");
    write_case(c, path);
    args += " " + path;
    cases.push_back(std::move(c));
  }
  const auto r = ::temper::test::run_shell(std::string(TEMPER_PYTHON) + " " + ::temper::test::source_dir() +
                                 "/tests/train/attention_torch_ref.py" + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (size_t i = 0; i < cases.size(); ++i)
    read_ref(cases[i], dir / ("case" + std::to_string(i) + ".bin.ref"));
  return cases;
}

// Keys the query with the most visible keys sees (bounds grow with it).
int64_t max_keys(const Case& c) {
  int64_t m = 0;
  for (int64_t t = 0; t < c.sh.T; ++t) {
    const int64_t q_pos = c.sh.pos0 + t;
    int64_t f = c.sh.window > 0 ? std::max<int64_t>(0, q_pos - c.sh.window + 1) : 0;
    if (c.sh.packed) f = std::max<int64_t>(f, c.first[size_t(t)]);
    m = std::max(m, q_pos - f + 1);
  }
  return m;
}

std::vector<double> to_f64(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST(AttentionTiled, ForwardAndBackwardMatchFloat64AndScalarReferences) {
  ::temper::test::TempDir dir;
  const auto cases = cases_with_references(dir);
  ASSERT_GT(cases.size(), 40u);
  for (const Case& c : cases) {
    const Shape& sh = c.sh;
    SCOPED_TRACE(sh.name());
    const int32_t* first = sh.packed ? c.first.data() : nullptr;
    const auto q = to_f32(c.q), k = to_f32(c.k), v = to_f32(c.v), dout = to_f32(c.dout);
    std::vector<float> out(q.size()), lse(size_t(sh.T * sh.NH));
    std::vector<float> out_s(q.size()), lse_s(lse.size());
    forward::attention_forward_masked(out.data(), lse.data(), q.data(), k.data(), v.data(), first,
                                      sh.T, sh.pos0, sh.NH, sh.NKV, sh.HD, sh.window, c.scale);
    forward::attention_forward_reference(out_s.data(), lse_s.data(), q.data(), k.data(),
                                         v.data(), first, sh.T, sh.pos0, sh.NH, sh.NKV, sh.HD,
                                         sh.window, c.scale);
    const double n_keys = double(max_keys(c)), HD = sh.HD;
    double max_v = 0, max_lse = 0;
    for (double x : c.v) max_v = std::max(max_v, std::fabs(x));
    for (double x : c.lse) max_lse = std::max(max_lse, std::fabs(x));
    const double b_out = (2 * HD * c.score + 2 * n_keys + 4) * kEps32 * max_v;
    const double b_lse = (HD * c.score + n_keys + 4) * kEps32 + kEps32 * max_lse;
    expect_close(out, c.out, b_out, "out vs float64 " + sh.name());
    expect_close(lse, c.lse, b_lse, "lse vs float64 " + sh.name());
    expect_close(out, to_f64(out_s), 2 * b_out, "out vs scalar " + sh.name());
    expect_close(lse, to_f64(lse_s), 2 * b_lse, "lse vs scalar " + sh.name());
    if (sh.pos0 != 0) continue;

    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<float> dq_s(q.size()), dk_s(k.size()), dv_s(v.size());
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                       v.data(), out.data(), lse.data(), first, sh.T, sh.NH, sh.NKV, sh.HD,
                       sh.window, c.scale);
    attention_backward_reference(dq_s.data(), dk_s.data(), dv_s.data(), dout.data(), q.data(),
                                 k.data(), v.data(), out.data(), lse.data(), first, sh.T, sh.NH,
                                 sh.NKV, sh.HD, sh.window, c.scale);
    const double terms = double(sh.T) * (sh.NH / sh.NKV);
    const double cg = (2 * HD * c.score + max_lse + 2 * HD + 2 * double(sh.T) + terms + 8) * kEps32;
    expect_close(dq, c.dq, cg * c.gq, "dq vs float64 " + sh.name());
    expect_close(dk, c.dk, cg * c.gk, "dk vs float64 " + sh.name());
    expect_close(dv, c.dv, cg * c.gv, "dv vs float64 " + sh.name());
    expect_close(dq, to_f64(dq_s), 2 * cg * c.gq, "dq vs scalar " + sh.name());
    expect_close(dk, to_f64(dk_s), 2 * cg * c.gk, "dk vs scalar " + sh.name());
    expect_close(dv, to_f64(dv_s), 2 * cg * c.gv, "dv vs scalar " + sh.name());
  }
}

}  // namespace
}  // namespace temper::train
