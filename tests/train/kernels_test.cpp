// The fp32 training kernels (train/kernels.h, and the runtime's masked attention forward they
// pair with) against the double scalar references of train/ref at awkward sizes. Bounds are
// derived from each kernel's fp32 roundings and stated at each check; the printed ratio shows
// the margin.
#include <gtest/gtest.h>

#include <cstring>

#include "forward/layers.h"
#include "forward/matmul.h"
#include "grad_check.h"
#include "stored_matrix.h"
#include "quant/quant.h"
#include "train/kernels.h"
#include "train/ref/backward_scalar.h"

namespace temper::train {
namespace {

using test::expect_close;
using test::kEps32;
using test::max_abs;
using test::randn_f32;
using test::to_f32;

using test::StoredMatrix;

std::vector<double> abs_of(std::vector<double> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

TEST(TrainKernels, MatmulBackwardAnyStoredType) {
  for (DType type : {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_K})
    for (int64_t n : {1, 5}) {
      const int64_t K = 256, N = 67;
      StoredMatrix w(type, N, K, 30);
      const auto dy = randn_f32(size_t(n * N), 31);
      std::vector<double> want(size_t(n * K), 0.0), mag(size_t(n * K), 0.0);
      ref::linear_backward(want.data(), dy.data(), w.values.data(), n, K, N);
      ref::linear_backward(mag.data(), abs_of(dy).data(), abs_of(w.values).data(), n, K, N);
      std::vector<float> got(size_t(n * K), 7.0f), scratch;
      matmul_backward(got.data(), to_f32(dy).data(), N, w.m, n, false, scratch);
      // A length-N fp32 dot product: |err| <= N eps Σ|dy_o W_oi| (Higham's bound, whatever
      // the summation order sgemm picks).
      expect_close(got, want, N * kEps32 * max_abs(mag),
                   "matmul_backward " + std::string(dtype_name(type)));
      // accumulate = true adds to what is there.
      matmul_backward(got.data(), to_f32(dy).data(), N, w.m, n, true, scratch);
      for (auto& x : want) x *= 2;
      expect_close(got, want, 2 * N * kEps32 * max_abs(mag), "matmul_backward accumulate");
    }
}

TEST(TrainKernels, LoraForwardBackward) {
  const int64_t n = 9, K = 37, N = 23;
  const int r = 5;
  const float s = 0.75f;
  const auto x = randn_f32(n * K, 40), a = randn_f32(r * K, 41), b = randn_f32(N * r, 42),
             y0 = randn_f32(n * N, 43), dy = randn_f32(n * N, 44);
  auto want_y = y0;
  ref::lora_forward(want_y.data(), x.data(), a.data(), b.data(), double(s), n, K, N, r);
  auto y = to_f32(y0);
  std::vector<float> u(size_t(n * r)), du(size_t(n * r));
  lora_forward(y.data(), N, u.data(), to_f32(x).data(), to_f32(a).data(), to_f32(b).data(), s, n,
               K, N, r);
  // Two chained products of lengths K and r with O(1) inputs: |u| <= ~sqrt(K)·3, so the error
  // of s·u·Bᵀ is <= (K + r + 2) eps Σ|s u_j b_j| <= (K + r + 2) eps · s · r · max|u| max|b|.
  double max_u = 0;
  for (float v : u) max_u = std::max(max_u, double(std::fabs(v)));
  expect_close(y, want_y, (K + r + 2) * kEps32 * (max_abs(y0) + s * r * max_u * max_abs(b)),
               "lora_forward");

  std::vector<double> dx(n * K, 0.0), da(r * K, 0.0), db(N * r, 0.0);
  ref::lora_backward(dx.data(), da.data(), db.data(), dy.data(), x.data(), a.data(), b.data(),
                     double(s), n, K, N, r);
  std::vector<float> gx(n * K, 0.0f), ga(r * K, 0.0f), gb(N * r, 0.0f);
  lora_backward(gx.data(), ga.data(), gb.data(), du.data(), to_f32(dy).data(), N,
                to_f32(x).data(), u.data(), to_f32(a).data(), to_f32(b).data(), s, n, K, N, r);
  // Each gradient is two chained sums (lengths N then K or n, or K then n): relative error
  // <= (N + K + n) eps of the magnitude scale, which is bounded by the |.|-reference.
  std::vector<double> mx(n * K, 0.0), ma(r * K, 0.0), mb(N * r, 0.0);
  ref::lora_backward(mx.data(), ma.data(), mb.data(), abs_of(dy).data(), abs_of(x).data(),
                     abs_of(a).data(), abs_of(b).data(), double(s), n, K, N, r);
  const double c = (N + K + n) * kEps32;
  expect_close(gx, dx, c * max_abs(mx), "lora dx");
  expect_close(ga, da, c * max_abs(ma), "lora dA");
  expect_close(gb, db, c * max_abs(mb), "lora dB");
}

TEST(TrainKernels, RmsnormBackward) {
  for (int dim : {1, 7, 64, 257})
    for (float offset : {0.0f, 1.0f}) {
      const int64_t rows = 3;
      const auto x = randn_f32(rows * dim, 50 + dim, 2.0), dy = randn_f32(rows * dim, 51);
      const auto w = to_f32(randn_f32(dim, 52, 0.3));
      std::vector<double> want(x.size(), 0.0), mag(x.size(), 0.0);
      ref::rmsnorm_backward(want.data(), dy.data(), x.data(), w.data(), double(offset), rows, dim,
                            1e-6);
      std::vector<float> got(x.size(), 0.0f);
      rmsnorm_backward(got.data(), to_f32(dy).data(), to_f32(x).data(), w.data(), offset, rows,
                       dim, 1e-6f);
      // Sums in double; per element a handful (<= 8) of fp32 roundings of terms bounded by
      // rstd·|g_i| + |x_i| rstd³ Σ|g x| / D: bound 8 eps times that scale.
      double scale = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0, gx = 0, gmax = 0;
        for (int i = 0; i < dim; ++i) {
          const double xi = x[r * dim + i], g = dy[r * dim + i] * (offset + w[i]);
          ss += xi * xi, gx += std::fabs(g * xi), gmax = std::max(gmax, std::fabs(g));
        }
        const double rstd = 1 / std::sqrt(ss / dim + 1e-6);
        for (int i = 0; i < dim; ++i)
          scale = std::max(scale, rstd * gmax + std::fabs(x[r * dim + i]) * rstd * rstd * rstd * gx / dim);
      }
      expect_close(got, want, 8 * kEps32 * scale, "rmsnorm_backward dim " + std::to_string(dim));
    }
}

TEST(TrainKernels, RopeBackwardIsTheInverseRotation) {
  for (RopeStyle style : {RopeStyle::kHalf, RopeStyle::kInterleaved})
    for (int n_rot : {14, 6}) {
      const int64_t n = 5;
      const int NH = 3, HD = 14;
      const auto p = forward::make_rope_params(style, HD, n_rot, 500000.0f, {}, 1.0f);
      const std::vector<int32_t> pos = {0, 1, 17, 999, 5000};
      const auto dy = randn_f32(n * NH * HD, 60);
      auto want = dy;
      ref::rope_backward(want.data(), pos.data(), n, NH, NH * HD, p);
      auto got = to_f32(dy);
      rope_backward(got.data(), pos.data(), n, NH, NH * HD, p);
      // va c - vb s with c, s rounded to fp32 and two products and a sum: <= 4 eps (|va|+|vb|).
      expect_close(got, want, 8 * kEps32 * max_abs(dy), "rope_backward");
    }
}

TEST(TrainKernels, GluBackward) {
  const int64_t n = 1001;
  const auto g = randn_f32(n, 70, 3.0), u = randn_f32(n, 71), dy = randn_f32(n, 72);
  for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
    std::vector<double> dg(n), du(n);
    ref::glu_backward(dg.data(), du.data(), dy.data(), g.data(), u.data(), n, act);
    std::vector<float> gg(n), gu(n);
    glu_backward(gg.data(), gu.data(), to_f32(dy).data(), to_f32(g).data(), to_f32(u).data(), n,
                 act);
    // Computed in double, rounded once to fp32: half an ulp of the result.
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_LE(std::fabs(gg[i] - dg[i]), 0.5 * kEps32 * std::fabs(dg[i]) + 1e-45) << i;
      ASSERT_LE(std::fabs(gu[i] - du[i]), 0.5 * kEps32 * std::fabs(du[i]) + 1e-45) << i;
    }
  }
}

// Magnitude scales of attention's outputs and gradients (the sums of |terms|, in double):
// max_i Σ_j P_ij |V_j| (forward), max Σ_j P_ij |dP_ij - D_i| |K_j| · scale (dq),
// max Σ_i P_ij |dP_ij - D_i| |Q_i| · scale (dk), max Σ_i P_ij |dO_i| (dv), and the largest
// |q·k| · scale and |log-sum-exp|. Rounding errors are bounded relative to these.
struct AttentionScales {
  double out = 0, dq = 0, dk = 0, dv = 0, score = 0, lse = 0;
};
AttentionScales attention_scales(const std::vector<double>& q, const std::vector<double>& k,
                                 const std::vector<double>& v, const std::vector<double>& dout,
                                 const int32_t* seg, int64_t n, int NH, int NKV, int HD,
                                 int window, double scale) {
  AttentionScales a;
  const int64_t qs = int64_t(NH) * HD, kvs = int64_t(NKV) * HD;
  std::vector<double> mq(q.size()), mk(k.size()), mv(v.size()), p(n);
  for (int64_t i = 0; i < n; ++i)
    for (int h = 0; h < NH; ++h) {
      const int64_t ko = int64_t(h / (NH / NKV)) * HD, qo = i * qs + h * HD;
      double mx = -INFINITY, denom = 0, D = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (!ref::key_visible(i, j, seg, window)) continue;
        double dot = 0, mag = 0;
        for (int d = 0; d < HD; ++d) dot += q[qo + d] * k[j * kvs + ko + d];
        for (int d = 0; d < HD; ++d) mag += std::fabs(q[qo + d] * k[j * kvs + ko + d]);
        a.score = std::max(a.score, mag * scale);
        p[j] = dot * scale;
        mx = std::max(mx, p[j]);
      }
      for (int64_t j = 0; j < n; ++j)
        if (ref::key_visible(i, j, seg, window)) denom += std::exp(p[j] - mx);
      a.lse = std::max(a.lse, std::fabs(mx + std::log(denom)));
      std::vector<double> dp(n);
      for (int64_t j = 0; j < n; ++j) {
        if (!ref::key_visible(i, j, seg, window)) continue;
        p[j] = std::exp(p[j] - mx) / denom;
        for (int d = 0; d < HD; ++d) dp[j] += dout[qo + d] * v[j * kvs + ko + d];
        D += p[j] * dp[j];
      }
      for (int64_t j = 0; j < n; ++j) {
        if (!ref::key_visible(i, j, seg, window)) continue;
        const double ds = p[j] * std::fabs(dp[j] - D);
        for (int d = 0; d < HD; ++d) {
          mq[qo + d] += scale * ds * std::fabs(k[j * kvs + ko + d]);
          mk[j * kvs + ko + d] += scale * ds * std::fabs(q[qo + d]);
          mv[j * kvs + ko + d] += p[j] * std::fabs(dout[qo + d]);
        }
      }
    }
  a.out = max_abs(v);  // outputs are convex combinations of V rows
  a.dq = max_abs(mq), a.dk = max_abs(mk), a.dv = max_abs(mv);
  return a;
}

TEST(TrainKernels, AttentionForwardAndBackwardWithMasks) {
  const int64_t n = 21;
  const int NH = 6, NKV = 2, HD = 16;
  const float scale = 0.25f;
  // Three packed examples: tokens [0, 8), [8, 17), [17, 21).
  std::vector<int32_t> seg(n), first_key(n);
  for (int64_t i = 0; i < n; ++i) {
    seg[i] = i < 8 ? 0 : i < 17 ? 1 : 2;
    first_key[i] = i < 8 ? 0 : i < 17 ? 8 : 17;
  }
  const std::vector<int32_t> one(n, 0);
  for (bool packed : {false, true})
    for (int window : {0, 5}) {
      const std::string what = std::string(packed ? "packed" : "one example") + " window " +
                               std::to_string(window);
      const auto q = randn_f32(n * NH * HD, 80), k = randn_f32(n * NKV * HD, 81),
                 v = randn_f32(n * NKV * HD, 82), dout = randn_f32(n * NH * HD, 83);
      std::vector<double> want(n * NH * HD);
      ref::attention_forward(want.data(), q.data(), k.data(), v.data(),
                             packed ? seg.data() : one.data(), n, NH, NKV, HD, window,
                             double(scale));
      std::vector<float> out(n * NH * HD), lse(n * NH);
      forward::attention_forward_masked(out.data(), lse.data(), to_f32(q).data(),
                                        to_f32(k).data(), to_f32(v).data(),
                                        packed ? first_key.data() : nullptr, n, 0, NH, NKV, HD,
                                        window, scale);
      const AttentionScales sc = attention_scales(q, k, v, dout, packed ? seg.data() : one.data(),
                                                  n, NH, NKV, HD, window, scale);
      // Probabilities: the score is an HD-term fp32 dot (abs. error <= HD eps · sc.score), the
      // backward rebuilds P from an fp32 log-sum-exp (abs. error eps · sc.lse) and fp32 exp:
      // relative error of P <= (HD sc.score + sc.lse + 2) eps. Each result is then a sum of
      // <= n · NH/NKV terms (Higham: that many eps more), relative to its magnitude scale.
      const double c = (HD * sc.score + sc.lse + 2 + double(n) * (NH / NKV)) * kEps32;
      expect_close(out, want, c * sc.out, "attention forward " + what);

      std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
      ref::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                              v.data(), packed ? seg.data() : one.data(), n, NH, NKV, HD, window,
                              double(scale));
      std::vector<float> gq(q.size()), gk(k.size()), gv(v.size());
      attention_backward(gq.data(), gk.data(), gv.data(), to_f32(dout).data(), to_f32(q).data(),
                         to_f32(k).data(), to_f32(v).data(), out.data(), lse.data(),
                         packed ? first_key.data() : nullptr, n, NH, NKV, HD, window, scale);
      expect_close(gq, dq, c * sc.dq, "attention dq " + what);
      expect_close(gk, dk, c * sc.dk, "attention dk " + what);
      expect_close(gv, dv, c * sc.dv, "attention dv " + what);
    }
}

TEST(TrainKernels, FusedCrossEntropy) {
  // Vocabulary larger than one dequantisation tile (2^20 elements / H = 8192 rows) so the
  // online softmax really rescales across tiles; f32, bf16 and Q8_0 W as stored types.
  const int64_t n = 6, H = 128, V = 8192 * 2 + 37;
  const std::vector<int32_t> target = {5, -1, V - 1, 8200, 0, -1};
  // F32 W is one tile of all V rows, cut by the logit budget: 1000 elements = 250 rows of 4
  // trained tokens, so the cuts fall at rows that are not multiples of anything in the tiling.
  for (DType type : {DType::kF32, DType::kBF16, DType::kQ8_0})
    for (float cap : {0.0f, 5.0f}) {  // cap 5: logits ~N(0, 4), so the cap matters
      StoredMatrix w(type, V, H, 90);
      const auto h = randn_f32(n * H, 91, 0.7);
      const double gs = 1.0 / 4;
      const double want_loss = ref::cross_entropy_forward(h.data(), w.values.data(),
                                                          target.data(), n, H, V, double(cap));
      std::vector<double> want(n * H);
      ref::cross_entropy_backward(want.data(), h.data(), w.values.data(), target.data(), n, H, V,
                                  double(cap), gs);
      std::vector<float> got(n * H, 9.0f), scratch;
      const double loss =
          cross_entropy(got.data(), to_f32(h).data(), w.m, target.data(), n, cap, float(gs),
                        scratch, type == DType::kF32 ? 1000 : kLogitElems);
      // Logits are H-term fp32 dots of size <= |h||w| ~ 0.7·0.5·H = 45: absolute error
      // <= H eps 45 ≈ 7e-4 per logit, which moves each token's loss by at most that much
      // (log-sum-exp and the target logit are 1-Lipschitz): 4 trained tokens ->  4 · 7e-4.
      const std::string what = std::string(dtype_name(type)) + " cap " + std::to_string(cap);
      EXPECT_NEAR(loss, want_loss, 4 * H * kEps32 * 45) << what;
      // dh_t = Σ_v (p_v - y_v) c'_v W_v: probabilities with relative error ~H eps 45 (the logit
      // error through exp) plus V-term fp32 sums of p_v |W_v|; bound (H·45 + V) eps gs max|W|.
      expect_close(got, want, (H * 45 + V) * kEps32 * gs * max_abs(w.values), "cross-entropy dh " + what);
      for (int64_t e = 0; e < H; ++e) EXPECT_EQ(got[1 * H + e], 0.0f);
    }
}

// moe_backward (fp32, weights in their stored type, split and fused expert layouts) against
// the double scalar VJP on the same dequantised weights.
TEST(TrainKernels, MoeBackward) {
  const int64_t n = 7;
  const int H = 64, E = 4, K = 2, I = 32;
  for (bool fused : {false, true})
    for (DType type : {DType::kF32, DType::kQ8_0}) {
      StoredMatrix router(DType::kF32, E, H, 60);
      std::vector<StoredMatrix> gate, up, down, gate_up;
      forward::LayerWeights W;
      W.router = router.m;
      W.expert_scale = {0.7f, 1.3f, 0.9f, 1.1f};
      std::vector<std::vector<double>> g, u, d;
      for (int e = 0; e < E; ++e) {
        down.emplace_back(type, H, I, 70 + e);
        d.push_back(down.back().values);
        forward::ExpertWeights ew;
        ew.down = down.back().m;
        if (fused) {
          gate_up.emplace_back(type, 2 * I, H, 80 + e);
          const auto& v = gate_up.back().values;
          g.emplace_back(v.begin(), v.begin() + I * H);
          u.emplace_back(v.begin() + I * H, v.end());
          ew.gate_up = gate_up.back().m;
        } else {
          gate.emplace_back(type, I, H, 80 + e);
          up.emplace_back(type, I, H, 90 + e);
          g.push_back(gate.back().values);
          u.push_back(up.back().values);
          ew.gate = gate.back().m;
          ew.up = up.back().m;
        }
        W.experts.push_back(ew);
      }
      LayerConfig L;
      L.ffn = FfnKind::kMoe;
      L.n_expert = E;
      L.n_expert_used = K;
      L.d_ff_expert = I;
      const auto xr = randn_f32(size_t(n * H), 61), xe = randn_f32(size_t(n * H), 62),
                 dout = randn_f32(size_t(n * H), 63);
      std::vector<double> wr(size_t(n * H), 0.0), we(size_t(n * H), 0.0);
      ref::moe_backward(wr.data(), we.data(), dout.data(), xr.data(), xe.data(), router.values.data(),
                        g, u, d, n, H, E, K, I, true, W.expert_scale.data(), Activation::kSilu);
      std::vector<float> gr(size_t(n * H), 0.0f), ge(size_t(n * H), 0.0f), scratch;
      moe_backward(gr.data(), ge.data(), to_f32(dout).data(), to_f32(xr).data(), to_f32(xe).data(),
                   W, L, n, H, Activation::kSilu, true, scratch);
      // Each gradient is three chained fp32 products of length <= 64 (down, then gate/up,
      // or router), each |err| <= 64 eps of its magnitude, which with O(1) inputs stays near
      // max|g|: bound 3 · 64 · eps · max|g| ≈ 2.3e-5 max|g| (observed ~2e-7 max|g|); a lost
      // expert or routing term moves the result by a sizeable fraction of max|g|.
      const std::string what = std::string("moe_backward ") + (fused ? "fused " : "split ") +
                                std::string(dtype_name(type));
      expect_close(gr, wr, 3 * 64 * kEps32 * max_abs(wr), what + " router in");
      expect_close(ge, we, 3 * 64 * kEps32 * max_abs(we), what + " expert in");
    }
}

}  // namespace
}  // namespace temper::train
