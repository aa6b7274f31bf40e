// Block-by-block calibration (see calibrate.h). The layer arithmetic is the runtime decoder's
// (runtime/forward/decoder.cpp) for dense blocks, step for step with the runtime's own kernels,
// stopped at the input of the matrix group being quantized.
//
// Glossary: T = tokens per chunk, H = d_model, K = a matrix's input width, C = chunks.
#include "quantize/calibrate.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "forward/forward.h"
#include "forward/kernels.h"
#include "forward/layers.h"
#include "forward/matmul.h"
#include "forward/weights.h"
#include "quant/quant.h"
#include "quantize/block_codes.h"
#include "quantize/gptq.h"
#include "tokenizer/tokenizer.h"
#include "train/data_chat.h"

namespace temper {
namespace {

using forward::LayerWeights;
using forward::Matrix;

// Where a layer run stops: at the input of one of the four matrix groups, or after the block.
enum class Stage : int { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3, kOut = 4 };
constexpr int kGroups = 4;

std::vector<int32_t> calibration_tokens(const std::string& path, const Tokenizer& tok, const std::string& chat_template) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), "--calibrate ", path, ": no such file");
  if (!path.ends_with(".jsonl") && !path.ends_with(".json"))
    return tok.encode(read_text_file(path), /*add_special=*/true, /*parse_special=*/false);
  // Chat records rendered with the model's template, as `temper imatrix --data` reads them.
  train::ChatDataOptions opt;
  opt.seq = INT_MAX;
  opt.train_on = train::TrainOn::kAll;
  opt.chat_template = chat_template;
  train::ChatDataStats stats;
  std::vector<int32_t> out;
  train::for_each_chat_example(path, tok, opt, stats, [&](train::Example&& ex) {
    if (ex.tokens.size() > 1 || (ex.tokens.size() == 1 && ex.tokens[0] != tok.bos()))
      out.insert(out.end(), ex.tokens.begin(), ex.tokens.end());
  });
  TEMPER_CHECK(!out.empty(), "--calibrate ", path, ": ", stats.records, " chat records render to no text",
               stats.records == 0 ? " (the file has no records)" : "");
  return out;
}

// The features this runner implements; anything else is refused before any work.
void check_supported(const ModelConfig& cfg, const std::string& input) {
  TEMPER_CHECK(cfg.ple_dim == 0, input, ": --calibrate does not run per-layer embeddings (", cfg.arch,
               "); quantize with --imatrix instead");
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[size_t(l)];
    TEMPER_CHECK(L.ffn == FfnKind::kDense, input, ": layer ", l, " has experts; --calibrate tunes dense blocks only "
                 "(quantize with --imatrix instead)");
    TEMPER_CHECK(L.kv_source_layer < 0 || L.kv_source_layer == l, input, ": layer ", l,
                 " shares another layer's K/V; --calibrate does not run KV-shared blocks (use --imatrix)");
  }
}

struct Buffers {
  std::vector<float> h, q, k, v, attn, a, gate, up, m, scratch;
  std::vector<int32_t> pos;
};

// One dense decoder block on one chunk, as Session::eval runs it; returns the input of `stop`'s
// matrix group, or runs the whole block and updates x in place (Stage::kOut).
const float* run_block(float* x, int64_t T, const LayerWeights& W, const LayerConfig& L, const ModelConfig& cfg,
                       const forward::RopeParams& rope, Stage stop, Buffers& s) {
  using namespace forward;
  const int H = cfg.d_model, NH = L.n_head, NKV = L.n_head_kv, HD = L.head_dim;
  const int64_t qd = int64_t(NH) * HD, kvd = int64_t(NKV) * HD;
  const float off = cfg.norm_weight_offset, eps = cfg.norm_eps;
  s.h.resize(size_t(T * H));
  s.q.resize(size_t(T * qd));
  s.attn.resize(size_t(T * qd));
  s.k.resize(size_t(T * kvd));
  s.v.resize(size_t(T * kvd));
  s.a.resize(size_t(T * H));
  s.m.resize(size_t(T * H));
  s.gate.resize(size_t(T * L.d_ff));
  s.up.resize(size_t(T * L.d_ff));
  s.pos.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) s.pos[size_t(t)] = int32_t(t);

  rmsnorm_forward(s.h.data(), x, W.attn_norm.data(), off, T, H, eps);
  if (stop == Stage::kQkv) return s.h.data();
  matmul_forward(s.q.data(), s.h.data(), W.wq, T, qd, s.scratch);
  if (!W.q_norm.empty()) rmsnorm_forward(s.q.data(), s.q.data(), W.q_norm.data(), off, T * NH, HD, eps);
  rope_forward(s.q.data(), s.pos.data(), T, NH, qd, rope);
  matmul_forward(s.k.data(), s.h.data(), W.wk, T, kvd, s.scratch);
  if (W.wv)
    matmul_forward(s.v.data(), s.h.data(), W.wv, T, kvd, s.scratch);
  else
    std::copy_n(s.k.data(), T * kvd, s.v.data());
  if (!W.k_norm.empty()) rmsnorm_forward(s.k.data(), s.k.data(), W.k_norm.data(), off, T * NKV, HD, eps);
  rope_forward(s.k.data(), s.pos.data(), T, NKV, kvd, rope);
  if (cfg.v_norm) rmsnorm_forward(s.v.data(), s.v.data(), nullptr, 0, T * NKV, HD, eps);
  const float scale = cfg.attn_scale != 0 ? cfg.attn_scale : 1.0f / std::sqrt(float(HD));
  attention_forward(s.attn.data(), s.q.data(), s.k.data(), s.v.data(), T, 0, NH, NKV, HD, L.window, scale);
  if (stop == Stage::kO) return s.attn.data();
  matmul_forward(s.a.data(), s.attn.data(), W.wo, T, H, s.scratch);
  if (!W.post_attn_norm.empty()) rmsnorm_forward(s.a.data(), s.a.data(), W.post_attn_norm.data(), off, T, H, eps);
  // The residual is updated only for the full block: the group stages must leave x as it was.
  std::vector<float> x2(x, x + T * H);
  for (int64_t i = 0; i < T * H; ++i) x2[size_t(i)] += s.a[size_t(i)];
  std::fill(s.m.begin(), s.m.end(), 0.0f);
  if (L.d_ff > 0 && W.ffn_gate) {
    rmsnorm_forward(s.h.data(), x2.data(), W.ffn_norm.data(), off, T, H, eps);
    if (stop == Stage::kGateUp) return s.h.data();
    matmul_forward(s.gate.data(), s.h.data(), W.ffn_gate, T, L.d_ff, s.scratch);
    matmul_forward(s.up.data(), s.h.data(), W.ffn_up, T, L.d_ff, s.scratch);
    glu_forward(s.gate.data(), s.gate.data(), s.up.data(), T * L.d_ff, cfg.act);
    if (stop == Stage::kDown) return s.gate.data();
    matmul_forward(s.m.data(), s.gate.data(), W.ffn_down, T, H, s.scratch);
  }
  if (stop != Stage::kOut) return nullptr;
  if (!W.post_ffn_norm.empty()) rmsnorm_forward(s.m.data(), s.m.data(), W.post_ffn_norm.data(), off, T, H, eps);
  for (int64_t i = 0; i < T * H; ++i) x[i] = x2[size_t(i)] + s.m[size_t(i)];
  if (W.layer_scalar != 1)
    for (int64_t i = 0; i < T * H; ++i) x[i] *= W.layer_scalar;
  return x;
}

// The matrices of group g of a block (the field pointers, so they can be swapped for their
// quantized versions).
std::vector<Matrix*> group_matrices(LayerWeights& W, Stage g) {
  switch (g) {
    case Stage::kQkv: return {&W.wq, &W.wk, &W.wv};
    case Stage::kO: return {&W.wo};
    case Stage::kGateUp: return {&W.ffn_gate, &W.ffn_up};
    case Stage::kDown: return {&W.ffn_down};
    default: return {};
  }
}

// H += Xᵀ X / n for X (T, K), in double.
void accumulate_moments(std::vector<double>& h, const float* x, int64_t T, int64_t K, double inv_n,
                        std::vector<float>& tmp) {
  tmp.assign(size_t(K * K), 0.0f);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(K), int(T), 1.0f, x, int(K), 0.0f, tmp.data(), int(K));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j) {
      const double v = double(tmp[size_t(i * K + j)]) * inv_n;
      h[size_t(i * K + j)] += v;
      if (j != i) h[size_t(j * K + i)] += v;
    }
}

std::vector<float> matrix_f32(const Matrix& m) {
  std::vector<float> out(size_t(m.rows * m.cols));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m.rows; ++r) forward::matrix_row(&out[size_t(r * m.cols)], m, r);
  return out;
}

// numpy's .npy v1.0: a (K, K) little-endian float64 array.
void write_npy(const std::string& path, const std::vector<double>& h, int64_t K) {
  std::string header = cat("{'descr': '<f8', 'fortran_order': False, 'shape': (", K, ", ", K, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += char(1);
  bytes += char(0);
  const uint16_t len = uint16_t(header.size());
  bytes.append(reinterpret_cast<const char*>(&len), 2);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(h.data()), h.size() * sizeof(double));
  AtomicOutput out(path, true, {});
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace

CalibrationResult calibrate_model(const OpenedModel& om, const std::map<std::string, DType>& types,
                                  const CalibrateOptions& opt) {
  const ModelConfig& cfg = om.desc.config;
  const std::string input = om.files.empty() ? std::string("model") : om.files[0];
  for (const auto& [name, t] : types)
    TEMPER_CHECK(quant::has_block_codes(t), "--calibrate: tensor '", name, "' is ", dtype_name(t),
                 ", which the calibrated quantizer cannot pack (it packs Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, "
                 "IQ4_NL, IQ4_XS); choose another type or override that tensor with --tensor-type");
  check_supported(cfg, input);
  const TokenizerSource tsrc = om.format == ModelFormat::kGguf ? TokenizerSource::kGguf : TokenizerSource::kAuto;
  const Tokenizer tok = Tokenizer::from_assets(om.desc.tokenizer, tsrc);
  const std::vector<int32_t> tokens = calibration_tokens(opt.data, tok, om.desc.chat_template);
  CalibrationResult res;
  res.ctx = cfg.n_ctx_train > 0 ? std::min(opt.ctx, cfg.n_ctx_train) : opt.ctx;
  TEMPER_CHECK(res.ctx >= 2, "--calib-ctx must be at least 2");
  res.available = int64_t(tokens.size());
  TEMPER_CHECK(res.available >= res.ctx, "--calibrate ", opt.data, ": ", res.available,
               " tokens, but one calibration chunk needs ", res.ctx, " (", res.ctx - res.available,
               " more); give more text");
  const int64_t n_avail = res.available / res.ctx;
  const int64_t n_want = std::max<int64_t>(1, (opt.tokens + res.ctx - 1) / res.ctx);
  std::vector<int64_t> order(static_cast<size_t>(n_avail));
  for (int64_t i = 0; i < n_avail; ++i) order[size_t(i)] = i;
  if (opt.seed != 0) {  // Fisher-Yates with a fixed generator: the same chunks on every platform
    std::mt19937_64 rng(opt.seed);
    for (int64_t i = n_avail - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng() % uint64_t(i + 1))]);
  }
  res.chunks = int(std::min(n_avail, n_want));
  res.tokens = int64_t(res.chunks) * res.ctx;
  const int64_t T = res.ctx, H = cfg.d_model;

  forward::LoadOptions lo;
  lo.gguf_names = om.gguf_tensor_names;
  lo.embed_scale_in_weight_dtype = om.embed_scale_in_weight_dtype;
  const auto model = forward::Model::load(*om.tensors, om.desc, lo);
  const forward::Weights& w = model->weights();
  auto type_of = [&](const Matrix& m) -> const std::pair<const std::string, DType>* {
    const forward::MatrixName* n = forward::find_matrix(w, m);
    if (!n) return nullptr;
    auto it = types.find(n->gguf_name);
    return it == types.end() ? nullptr : &*it;
  };

  // The chunks' hidden states, from the embedding as the file will store it.
  std::vector<std::vector<float>> xs(size_t(res.chunks), std::vector<float>(size_t(T * H)));
  {
    Matrix embd = w.token_embd;
    std::vector<uint8_t> qbytes;
    if (const auto* e = type_of(w.token_embd)) {
      const std::vector<float> f = matrix_f32(w.token_embd);
      const size_t rb = quant::row_bytes(e->second, embd.cols);
      qbytes.resize(rb * size_t(embd.rows));
      quant::quantize_rows(e->second, f.data(), qbytes.data(), embd.rows, embd.cols, nullptr);
      embd = {qbytes.data(), e->second, embd.rows, embd.cols, rb};
    }
    const int32_t bos = tok.bos();
    for (int c = 0; c < res.chunks; ++c) {
      const int32_t* ids = tokens.data() + order[size_t(c)] * T;
      for (int64_t t = 0; t < T; ++t) {
        const int32_t id = t == 0 && bos >= 0 ? bos : ids[t];  // each chunk starts with BOS, as imatrix's
        float* xt = &xs[size_t(c)][size_t(t * H)];
        forward::matrix_row(xt, embd, id);
        if (cfg.embed_scale != 0)
          for (int64_t i = 0; i < H; ++i) xt[i] *= model->embed_scale();
      }
    }
  }

  Json dump_index = Json::object();
  if (!opt.dump_dir.empty()) std::filesystem::create_directories(opt.dump_dir);
  // Quantized bytes the later stages run on: kept in `res` (the file's bytes) and viewed here.
  Progress progress("calibrate", uint64_t(cfg.n_layer) * (kGroups + 1) * uint64_t(res.chunks), /*bytes=*/false);
  Buffers buf;
  std::vector<float> tmp;
  GptqOptions gopt;
  gopt.passes = std::max(1, opt.iters);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[size_t(l)];
    LayerWeights W = w.layers[size_t(l)];
    const forward::RopeParams rope =
        forward::make_rope_params(cfg.rope_style, L.head_dim, L.n_rot, L.rope_theta, L.rope_freq_factors, L.rope_pos_scale);
    for (int g = 0; g < kGroups; ++g) {
      const Stage stage = Stage(g);
      std::vector<Matrix*> mats;
      for (Matrix* m : group_matrices(W, stage))
        if (*m && type_of(*m)) mats.push_back(m);
      if (mats.empty()) {
        progress.add(uint64_t(res.chunks));
        continue;
      }
      const int64_t K = mats[0]->cols;
      std::vector<double> h(size_t(K * K), 0.0);
      for (int c = 0; c < res.chunks; ++c) {
        const float* in = run_block(xs[size_t(c)].data(), T, W, L, cfg, rope, stage, buf);
        accumulate_moments(h, in, T, K, 1.0 / double(res.tokens), tmp);
        progress.add(1);
      }
      std::string dump_file;
      if (!opt.dump_dir.empty()) {
        dump_file = cat("h_blk", l, "_group", g, ".npy");
        write_npy((std::filesystem::path(opt.dump_dir) / dump_file).string(), h, K);
      }
      for (Matrix* m : mats) {
        const auto& [name, t] = *type_of(*m);
        const std::vector<float> f = matrix_f32(*m);
        GptqResult r = gptq_quantize(t, f.data(), m->rows, K, h, gopt);
        CalibratedTensor& ct = res.tensors[name];
        ct = {t, std::move(r.bytes), r.error_gptq, r.error_plain, r.used_gptq};
        *m = {ct.bytes.data(), t, m->rows, K, quant::row_bytes(t, K)};
        if (!dump_file.empty()) dump_index[name] = dump_file;
      }
    }
    for (int c = 0; c < res.chunks; ++c) {  // the block's output, as quantized, feeds the next
      run_block(xs[size_t(c)].data(), T, W, L, cfg, rope, Stage::kOut, buf);
      progress.add(1);
    }
  }
  progress.finish();
  if (!opt.dump_dir.empty()) {
    const std::string text = dump_index.dump(1);
    AtomicOutput out((std::filesystem::path(opt.dump_dir) / "index.json").string(), true, {});
    out.write(text.data(), text.size());
    out.commit();
  }
  return res;
}

}  // namespace temper
