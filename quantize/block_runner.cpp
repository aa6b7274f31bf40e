// Calibration chunks and the dense decoder block (see block_runner.h). The layer arithmetic is
// the runtime decoder's (runtime/forward/decoder.cpp) for dense blocks, step for step with the
// runtime's own kernels, stopped at the input of the matrix group asked for.
#include "quantize/block_runner.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "forward/kernels.h"
#include "forward/layers.h"
#include "forward/matmul.h"
#include "train/data_chat.h"

namespace temper::calib {
namespace {

std::vector<int32_t> data_tokens(const std::string& path, const Tokenizer& tok, const std::string& chat_template,
                                 const std::string& flag) {
  if (path.ends_with(".jsonl") || path.ends_with(".json"))  // chat records, as `temper imatrix --data`
    return train::chat_token_stream(path, tok, chat_template, flag + " " + path);
  TEMPER_CHECK(file_exists(path) && !is_directory(path), flag, " ", path, ": no such file");
  return tok.encode(read_text_file(path), /*add_special=*/true, /*parse_special=*/false);
}

}  // namespace

void check_dense_blocks(const ModelConfig& cfg, const std::string& input, const std::string& flag) {
  TEMPER_CHECK(cfg.ple_dim == 0, input, ": ", flag, " does not run per-layer embeddings (", cfg.arch,
               "); quantize with --imatrix instead");
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[size_t(l)];
    TEMPER_CHECK(L.ffn == FfnKind::kDense, input, ": layer ", l, " has experts; ", flag,
                 " runs dense blocks only (quantize with --imatrix instead)");
    TEMPER_CHECK(L.kv_source_layer < 0 || L.kv_source_layer == l, input, ": layer ", l, " shares another layer's K/V; ",
                 flag, " does not run KV-shared blocks (use --imatrix)");
  }
}

Chunks load_chunks(const OpenedModel& om, const Tokenizer& tok, const std::string& path, int ctx, int64_t want_tokens,
                   uint64_t seed, const std::string& flag) {
  const ModelConfig& cfg = om.desc.config;
  const std::vector<int32_t> tokens = data_tokens(path, tok, om.desc.chat_template, flag);
  Chunks c;
  c.ctx = cfg.n_ctx_train > 0 ? std::min(ctx, cfg.n_ctx_train) : ctx;
  TEMPER_CHECK(c.ctx >= 2, "--calib-ctx must be at least 2");
  c.available = int64_t(tokens.size());
  TEMPER_CHECK(c.available >= c.ctx, flag, " ", path, ": ", c.available, " tokens, but one calibration chunk needs ",
               c.ctx, " (", c.ctx - c.available, " more); give more text");
  const int64_t n_avail = c.available / c.ctx;
  const int64_t n_want = std::max<int64_t>(1, (want_tokens + c.ctx - 1) / c.ctx);
  std::vector<int64_t> order(static_cast<size_t>(n_avail));
  for (int64_t i = 0; i < n_avail; ++i) order[size_t(i)] = i;
  if (seed != 0) {  // Fisher-Yates with a fixed generator: the same chunks on every platform
    std::mt19937_64 rng(seed);
    for (int64_t i = n_avail - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng() % uint64_t(i + 1))]);
  }
  const int32_t bos = tok.bos();
  for (int64_t i = 0; i < std::min(n_avail, n_want); ++i) {
    const int32_t* ids = tokens.data() + order[size_t(i)] * c.ctx;
    std::vector<int32_t> chunk(ids, ids + c.ctx);
    if (bos >= 0) chunk[0] = bos;  // each chunk starts with BOS, as imatrix's
    c.ids.push_back(std::move(chunk));
  }
  return c;
}

std::vector<std::vector<float>> embed_chunks(const Chunks& chunks, const forward::Matrix& embd,
                                             const forward::Model& model) {
  const ModelConfig& cfg = model.config();
  const int64_t H = cfg.d_model;
  std::vector<std::vector<float>> xs;
  for (const auto& ids : chunks.ids) {
    std::vector<float> x(ids.size() * size_t(H));
    for (size_t t = 0; t < ids.size(); ++t) {
      float* xt = &x[t * size_t(H)];
      forward::matrix_row(xt, embd, ids[t]);
      if (cfg.embed_scale != 0)
        for (int64_t i = 0; i < H; ++i) xt[i] *= model.embed_scale();
    }
    xs.push_back(std::move(x));
  }
  return xs;
}

const float* run_block(float* x, int64_t T, const forward::LayerWeights& W, const LayerConfig& L,
                       const ModelConfig& cfg, const forward::RopeParams& rope, Stage stop, BlockBuffers& s) {
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
  s.x2.assign(x, x + T * H);
  for (int64_t i = 0; i < T * H; ++i) s.x2[size_t(i)] += s.a[size_t(i)];
  std::fill(s.m.begin(), s.m.end(), 0.0f);
  if (L.d_ff > 0 && W.ffn_gate) {
    rmsnorm_forward(s.h.data(), s.x2.data(), W.ffn_norm.data(), off, T, H, eps);
    if (stop == Stage::kGateUp) return s.h.data();
    matmul_forward(s.gate.data(), s.h.data(), W.ffn_gate, T, L.d_ff, s.scratch);
    matmul_forward(s.up.data(), s.h.data(), W.ffn_up, T, L.d_ff, s.scratch);
    glu_forward(s.gate.data(), s.gate.data(), s.up.data(), T * L.d_ff, cfg.act);
    if (stop == Stage::kDown) return s.gate.data();
    matmul_forward(s.m.data(), s.gate.data(), W.ffn_down, T, H, s.scratch);
  }
  if (stop != Stage::kOut) return nullptr;
  if (!W.post_ffn_norm.empty()) rmsnorm_forward(s.m.data(), s.m.data(), W.post_ffn_norm.data(), off, T, H, eps);
  for (int64_t i = 0; i < T * H; ++i) x[i] = s.x2[size_t(i)] + s.m[size_t(i)];
  if (W.layer_scalar != 1)
    for (int64_t i = 0; i < T * H; ++i) x[i] *= W.layer_scalar;
  return x;
}

void run_head(std::vector<float>& logits, const float* x, int64_t T, const forward::Vector& output_norm,
              const forward::Matrix& output, const ModelConfig& cfg, BlockBuffers& s) {
  using namespace forward;
  const int64_t H = cfg.d_model, V = output.rows;
  s.h.resize(size_t(T * H));
  rmsnorm_forward(s.h.data(), x, output_norm.data(), cfg.norm_weight_offset, T, H, cfg.norm_eps);
  logits.resize(size_t(T * V));
  matmul_forward(logits.data(), s.h.data(), output, T, V, s.scratch);
  if (cfg.final_softcap != 0) softcap_forward(logits.data(), T * V, cfg.final_softcap);
}

std::vector<forward::Matrix*> group_matrices(forward::LayerWeights& W, Stage g) {
  switch (g) {
    case Stage::kQkv: return {&W.wq, &W.wk, &W.wv};
    case Stage::kO: return {&W.wo};
    case Stage::kGateUp: return {&W.ffn_gate, &W.ffn_up};
    case Stage::kDown: return {&W.ffn_down};
    default: return {};
  }
}

std::vector<GroupTensor> group_tensors(const forward::Weights& w, const std::vector<forward::Matrix*>& mats) {
  std::vector<GroupTensor> out;
  for (size_t i = 0; i < mats.size(); ++i) {
    const forward::Matrix& m = *mats[i];
    if (!m) continue;
    if (const forward::MatrixName* n = forward::find_matrix(w, m)) {
      out.push_back({int(i), 1, n->gguf_name});
    } else if (!out.empty() && out.back().index + out.back().n_slots == int(i) &&
               mats[i - 1]->row(mats[i - 1]->rows) == m.data) {
      ++out.back().n_slots;  // the next row block of a fused tensor
    }
  }
  return out;
}

forward::Matrix joined(const std::vector<forward::Matrix*>& mats, const GroupTensor& g) {
  forward::Matrix whole = *mats[size_t(g.index)];
  for (int k = 1; k < g.n_slots; ++k) whole.rows += mats[size_t(g.index + k)]->rows;
  return whole;
}

void split_into(const std::vector<forward::Matrix*>& mats, const GroupTensor& g, const forward::Matrix& whole) {
  int64_t first = 0;
  for (int k = 0; k < g.n_slots; ++k) {
    forward::Matrix* m = mats[size_t(g.index + k)];
    const int64_t rows = m->rows;
    *m = whole.slice_rows(first, rows);
    first += rows;
  }
}

std::vector<float> matrix_f32(const forward::Matrix& m) {
  std::vector<float> out(size_t(m.rows * m.cols));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m.rows; ++r) forward::matrix_row(&out[size_t(r * m.cols)], m, r);
  return out;
}

}  // namespace temper::calib
