// Every scalar VJP in train/ref/backward_scalar.h against central finite differences of its
// forward in train/ref/forward_scalar.h, all in double. Each forward is reduced to a scalar
// f = <R, forward(x)> with a fixed random R, whose gradient is the VJP with dout = R.
// Tolerance: see expect_grad_matches_fd.
#include <gtest/gtest.h>

#include "grad_check.h"
#include "train/ref/backward_scalar.h"

namespace temper::train {
namespace {

using test::dot;
using test::expect_grad_matches_fd;
using test::randn;

TEST(BackwardScalar, LinearInput) {
  const int64_t n = 3, K = 7, N = 5;
  const auto w = randn(N * K, 1), x = randn(n * K, 2), R = randn(n * N, 3);
  auto f = [&](const std::vector<double>& xx) {
    std::vector<double> y(n * N);
    ref::linear_forward(y.data(), xx.data(), w.data(), n, K, N);
    return dot(y, R);
  };
  std::vector<double> dx(n * K, 0.0);
  ref::linear_backward(dx.data(), R.data(), w.data(), n, K, N);
  expect_grad_matches_fd(f, x, dx, "linear dx");
}

TEST(BackwardScalar, Lora) {
  const int64_t n = 4, K = 6, N = 5;
  const int r = 3;
  const double s = 0.7;
  // Non-zero B: with PEFT's B = 0 init dA would be zero and its check vacuous.
  const auto x = randn(n * K, 4), a = randn(r * K, 5), b = randn(N * r, 6), R = randn(n * N, 7);
  auto run = [&](const std::vector<double>& xx, const std::vector<double>& aa,
                 const std::vector<double>& bb) {
    std::vector<double> y(n * N, 0.0);
    ref::lora_forward(y.data(), xx.data(), aa.data(), bb.data(), s, n, K, N, r);
    return dot(y, R);
  };
  std::vector<double> dx(n * K, 0.0), da(r * K, 0.0), db(N * r, 0.0);
  ref::lora_backward(dx.data(), da.data(), db.data(), R.data(), x.data(), a.data(), b.data(), s, n,
                     K, N, r);
  expect_grad_matches_fd([&](const auto& v) { return run(v, a, b); }, x, dx, "lora dx");
  expect_grad_matches_fd([&](const auto& v) { return run(x, v, b); }, a, da, "lora dA");
  expect_grad_matches_fd([&](const auto& v) { return run(x, a, v); }, b, db, "lora dB");
}

TEST(BackwardScalar, Rmsnorm) {
  const int64_t rows = 3;
  const int dim = 9;
  const auto x = randn(rows * dim, 8, 2.0), R = randn(rows * dim, 9);
  std::vector<float> w(dim);
  for (int i = 0; i < dim; ++i) w[i] = float(0.3 * randn(dim, 10)[i]);
  for (double offset : {0.0, 1.0})
    for (bool weighted : {true, false}) {
      const float* wp = weighted ? w.data() : nullptr;
      auto f = [&](const std::vector<double>& xx) {
        std::vector<double> y(xx.size());
        ref::rmsnorm_forward(y.data(), xx.data(), wp, offset, rows, dim, 1e-6);
        return dot(y, R);
      };
      std::vector<double> dx(x.size(), 0.0);
      ref::rmsnorm_backward(dx.data(), R.data(), x.data(), wp, offset, rows, dim, 1e-6);
      expect_grad_matches_fd(f, x, dx, "rmsnorm offset " + std::to_string(offset));
    }
}

TEST(BackwardScalar, Rope) {
  const int64_t n = 4;
  const int NH = 2;
  const std::vector<int32_t> pos = {0, 3, 17, 250};
  for (RopeStyle style : {RopeStyle::kHalf, RopeStyle::kInterleaved})
    for (int n_rot : {8, 4}) {  // full and partial rotary of head_dim 8
      const std::vector<float> factors = {1.0f, 2.0f, 8.0f, 8.0f};  // llama3-like divisors
      const auto p = forward::make_rope_params(style, 8, n_rot, 10000.0f, factors, 0.5f);
      const auto x = randn(n * NH * 8, 11), R = randn(n * NH * 8, 12);
      auto f = [&](const std::vector<double>& xx) {
        auto y = xx;
        ref::rope_forward(y.data(), pos.data(), n, NH, NH * 8, p);
        return dot(y, R);
      };
      auto dx = R;
      ref::rope_backward(dx.data(), pos.data(), n, NH, NH * 8, p);
      expect_grad_matches_fd(f, x, dx, "rope n_rot " + std::to_string(n_rot));
    }
}

TEST(BackwardScalar, Attention) {
  const int64_t n = 7;
  const int NH = 4, NKV = 2, HD = 3;
  // Two packed examples (tokens 0-3 and 4-6); windows none, 2 and 3.
  const std::vector<int32_t> one(n, 0), two = {0, 0, 0, 0, 1, 1, 1};
  for (const auto* seg : {&one, &two})
    for (int window : {0, 2, 3}) {
      const auto q = randn(n * NH * HD, 13), k = randn(n * NKV * HD, 14),
                 v = randn(n * NKV * HD, 15), R = randn(n * NH * HD, 16);
      const double scale = 0.6;
      auto run = [&](const auto& qq, const auto& kk, const auto& vv) {
        std::vector<double> out(n * NH * HD);
        ref::attention_forward(out.data(), qq.data(), kk.data(), vv.data(), seg->data(), n, NH,
                               NKV, HD, window, scale);
        return dot(out, R);
      };
      std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
      ref::attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(),
                              v.data(), seg->data(), n, NH, NKV, HD, window, scale);
      const std::string what = "attention window " + std::to_string(window) +
                               (seg == &two ? " packed" : "");
      expect_grad_matches_fd([&](const auto& x) { return run(x, k, v); }, q, dq, what + " dq");
      expect_grad_matches_fd([&](const auto& x) { return run(q, x, v); }, k, dk, what + " dk");
      expect_grad_matches_fd([&](const auto& x) { return run(q, k, x); }, v, dv, what + " dv");
    }
}

TEST(BackwardScalar, Glu) {
  const int64_t n = 40;
  const auto g = randn(n, 17, 2.5), u = randn(n, 18), R = randn(n, 19);
  for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
    auto run = [&](const auto& gg, const auto& uu) {
      std::vector<double> out(n);
      ref::glu_forward(out.data(), gg.data(), uu.data(), n, act);
      return dot(out, R);
    };
    std::vector<double> dg(n), du(n);
    ref::glu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), n, act);
    expect_grad_matches_fd([&](const auto& x) { return run(x, u); }, g, dg, "glu dgate");
    expect_grad_matches_fd([&](const auto& x) { return run(g, x); }, u, du, "glu dup");
  }
}

TEST(BackwardScalar, CrossEntropy) {
  const int64_t n = 5, H = 6, V = 11;
  const auto h = randn(n * H, 20), w = randn(V * H, 21, 2.0);
  const std::vector<int32_t> target = {3, -1, 0, 10, 7};  // token 1 is not trained
  for (double cap : {0.0, 3.0}) {
    auto f = [&](const std::vector<double>& hh) {
      return 0.25 * ref::cross_entropy_forward(hh.data(), w.data(), target.data(), n, H, V, cap);
    };
    std::vector<double> dh(h.size());
    ref::cross_entropy_backward(dh.data(), h.data(), w.data(), target.data(), n, H, V, cap, 0.25);
    expect_grad_matches_fd(f, h, dh, "cross-entropy softcap " + std::to_string(cap));
    for (int64_t i = 0; i < H; ++i) EXPECT_EQ(dh[1 * H + i], 0.0);
  }
}

TEST(BackwardScalar, Routing) {
  const int64_t n = 4;
  const int E = 6, K = 2;
  const auto z = randn(n * E, 22, 1.5), R = randn(n * K, 23);
  const std::vector<float> scale = {0.7f, 1.3f, 0.9f, 1.1f, 0.5f, 1.4f};
  const auto chosen = ref::top_experts(z.data(), n, E, K);
  for (bool renorm : {false, true})
    for (const float* sc : {static_cast<const float*>(nullptr), scale.data()}) {
      auto f = [&](const std::vector<double>& zz) {
        std::vector<double> w(n * K);
        ref::route_weights(w.data(), zz.data(), chosen.data(), n, E, K, renorm, sc);
        return dot(w, R);
      };
      std::vector<double> dz(n * E);
      ref::route_backward(dz.data(), R.data(), z.data(), chosen.data(), n, E, K, renorm, sc);
      expect_grad_matches_fd(f, z, dz,
                             std::string("routing") + (renorm ? " renormalised" : "") +
                                 (sc ? " scaled" : ""));
    }
}

// The whole expert block, router and expert inputs apart (Gemma 4) and as one input (Qwen 3
// MoE). The finite differences move inputs by 1e-6, far less than the gap between the K-th
// and (K+1)-th logit of these seeds, so the choice of experts is fixed around x.
TEST(BackwardScalar, MixtureOfExperts) {
  const int64_t n = 3;
  const int H = 5, E = 4, K = 2, I = 3;
  const auto xr = randn(n * H, 24), xe = randn(n * H, 25), router = randn(E * H, 26),
             R = randn(n * H, 27);
  std::vector<std::vector<double>> gate, up, down;
  for (int e = 0; e < E; ++e) {
    gate.push_back(randn(I * H, 30 + e));
    up.push_back(randn(I * H, 40 + e));
    down.push_back(randn(H * I, 50 + e));
  }
  const std::vector<float> scale = {0.7f, 1.3f, 0.9f, 1.1f};
  for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
    auto run = [&](const std::vector<double>& r_in, const std::vector<double>& e_in) {
      std::vector<double> out(n * H);
      ref::moe_forward(out.data(), r_in.data(), e_in.data(), router.data(), gate, up, down, n, H,
                       E, K, I, true, scale.data(), act);
      return dot(out, R);
    };
    std::vector<double> dxr(n * H, 0.0), dxe(n * H, 0.0);
    ref::moe_backward(dxr.data(), dxe.data(), R.data(), xr.data(), xe.data(), router.data(),
                      gate, up, down, n, H, E, K, I, true, scale.data(), act);
    expect_grad_matches_fd([&](const auto& x) { return run(x, xe); }, xr, dxr, "moe router in");
    expect_grad_matches_fd([&](const auto& x) { return run(xr, x); }, xe, dxe, "moe expert in");
    // One input for both (renormalised, no scales): the gradients of the two uses add.
    auto run1 = [&](const std::vector<double>& x) {
      std::vector<double> out(n * H);
      ref::moe_forward(out.data(), x.data(), x.data(), router.data(), gate, up, down, n, H, E, K,
                       I, false, nullptr, act);
      return dot(out, R);
    };
    std::vector<double> dx(n * H, 0.0);
    ref::moe_backward(dx.data(), dx.data(), R.data(), xe.data(), xe.data(), router.data(), gate,
                      up, down, n, H, E, K, I, false, nullptr, act);
    expect_grad_matches_fd(run1, xe, dx, "moe shared input");
  }
}

}  // namespace
}  // namespace temper::train
