// Per-tensor KL sensitivity (see sensitivity.h).
//
// Glossary: T = tokens per chunk, H = d_model, V = n_vocab, C = chunks, L = blocks.
#include "quantize/sensitivity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "forward/forward.h"
#include "forward/matmul_observer.h"
#include "forward/weights.h"
#include "quant/quant.h"
#include "quantize/block_runner.h"
#include "quantize/imatrix_collect.h"
#include "tokenizer/tokenizer.h"

namespace temper {
namespace {

using forward::LayerWeights;
using forward::Matrix;

// Where a tensor sits: block `layer` (-1: the token embedding, L: the untied output) and its
// matrices in calib::group_matrices(layer, group).
struct Place {
  int layer = 0;
  calib::Stage group = calib::Stage::kQkv;
  calib::GroupTensor tensor;
};

// log-softmax of each row of `logits` (T, V), in place, accumulated in double.
void log_softmax_rows(std::vector<float>& logits, int64_t T, int64_t V) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    float* row = &logits[size_t(t * V)];
    const float mx = *std::max_element(row, row + V);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]) - mx);
    const double lse = double(mx) + std::log(s);
    for (int64_t v = 0; v < V; ++v) row[v] = float(double(row[v]) - lse);
  }
}

// Sum over the T tokens of KL(ref || softmax(logits)); ref holds log-probabilities (T, V).
double kl_sum(const std::vector<float>& ref, const std::vector<float>& logits, int64_t T, int64_t V) {
  std::vector<double> per(static_cast<size_t>(T));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    const float* r = &ref[size_t(t * V)];
    const float* l = &logits[size_t(t * V)];
    const float mx = *std::max_element(l, l + V);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(l[v]) - mx);
    const double lse = double(mx) + std::log(s);
    double kl = 0;
    for (int64_t v = 0; v < V; ++v) kl += std::exp(double(r[v])) * (double(r[v]) - (double(l[v]) - lse));
    per[size_t(t)] = kl;
  }
  double total = 0;  // in token order: the same sum for any thread count
  for (double k : per) total += k;
  return total;
}

}  // namespace

struct KlProbe::State {
  const OpenedModel* om = nullptr;
  std::unique_ptr<forward::Model> model;
  calib::Chunks chunks;
  std::vector<std::vector<std::vector<float>>> xs;  // (L+1, C, T*H): the input of each block, and the final states
  std::vector<std::vector<float>> ref;              // (C, T*V) reference log-probabilities
  Imatrix imatrix;
  std::map<std::string, Place> places;
  std::vector<forward::RopeParams> ropes;
  calib::BlockBuffers buf;
  std::vector<float> logits;

  const forward::Weights& w() const { return model->weights(); }
  bool tied() const { return w().output.data == w().token_embd.data; }

  // `m` (named `name`) quantized to t with the imatrix (bytes kept in `store`).
  Matrix quantized(const Matrix& m, const std::string& name, DType t, std::vector<uint8_t>& store) const {
    const std::vector<float> f = calib::matrix_f32(m);
    const size_t rb = quant::row_bytes(t, m.cols);
    store.resize(rb * size_t(m.rows));
    const float* im = nullptr;
    if (auto it = imatrix.entries.find(name); it != imatrix.entries.end() && int64_t(it->second.size()) == m.cols)
      im = it->second.data();
    quant::quantize_rows(t, f.data(), store.data(), m.rows, m.cols, im);
    return {store.data(), t, m.rows, m.cols, rb};
  }

  // Replaces the block matrices of the tensor at `p` in `layers` by it quantized to t.
  void swap_in(std::vector<LayerWeights>& layers, const Place& p, DType t, std::vector<uint8_t>& store) const {
    const auto mats = calib::group_matrices(layers[size_t(p.layer)], p.group);
    calib::split_into(mats, p.tensor, quantized(calib::joined(mats, p.tensor), p.tensor.name, t, store));
  }

  // Mean KL per token of the model run from block `first` on `x0` (C, T*H) with `layers` and the
  // output `out`.
  double run_kl(int first, std::vector<std::vector<float>> x0, const std::vector<LayerWeights>& layers,
                const Matrix& out, Progress* progress) {
    const ModelConfig& cfg = model->config();
    const int64_t T = chunks.ctx, V = out.rows;
    double total = 0;
    for (size_t c = 0; c < x0.size(); ++c) {
      for (int l = first; l < cfg.n_layer; ++l) {
        calib::run_block(x0[c].data(), T, layers[size_t(l)], cfg.layers[size_t(l)], cfg, ropes[size_t(l)],
                         calib::Stage::kOut, buf);
        if (progress) progress->add(1);
      }
      calib::run_head(logits, x0[c].data(), T, w().output_norm, out, cfg, buf);
      if (progress) progress->add(1);
      total += kl_sum(ref[c], logits, T, V);
    }
    return total / double(chunks.tokens());
  }
};

KlProbe::KlProbe(const OpenedModel& om, const SensitivityOptions& opt, const Imatrix* imatrix)
    : st_(std::make_unique<State>()) {
  State& s = *st_;
  s.om = &om;
  const ModelConfig& cfg = om.desc.config;
  const std::string input = om.files.empty() ? std::string("model") : om.files[0];
  calib::check_dense_blocks(cfg, input, "--target-bpw/--max-kld");
  const TokenizerSource tsrc = om.format == ModelFormat::kGguf ? TokenizerSource::kGguf : TokenizerSource::kAuto;
  const Tokenizer tok = Tokenizer::from_assets(om.desc.tokenizer, tsrc);
  s.chunks = calib::load_chunks(om, tok, opt.data, opt.ctx, opt.tokens, opt.seed, "--bpw-data");
  forward::LoadOptions lo;
  lo.gguf_names = om.gguf_tensor_names;
  lo.embed_scale_in_weight_dtype = om.embed_scale_in_weight_dtype;
  s.model = forward::Model::load(*om.tensors, om.desc, lo);
  const forward::Weights& w = s.w();
  const int64_t T = s.chunks.ctx;
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[size_t(l)];
    s.ropes.push_back(forward::make_rope_params(cfg.rope_style, L, int(T)));
    LayerWeights W = w.layers[size_t(l)];
    for (int g = 0; g < calib::kGroups; ++g) {
      for (const auto& gt : calib::group_tensors(w, calib::group_matrices(W, calib::Stage(g))))
        s.places[gt.name] = {l, calib::Stage(g), gt};
    }
  }
  if (const forward::MatrixName* n = forward::find_matrix(w, w.token_embd)) s.places[n->gguf_name] = {-1, calib::Stage::kQkv, {}};
  if (!s.tied())
    if (const forward::MatrixName* n = forward::find_matrix(w, w.output)) s.places[n->gguf_name] = {cfg.n_layer, calib::Stage::kQkv, {}};

  // The full-precision run: every block's input, the reference distribution, the imatrix.
  ImatrixCollector sums(w, /*blk_only=*/false);
  s.xs.assign(size_t(cfg.n_layer + 1), {});
  s.xs[0] = calib::embed_chunks(s.chunks, w.token_embd, *s.model);
  Progress progress("reference", uint64_t(cfg.n_layer + 1) * s.chunks.ids.size(), /*bytes=*/false);
  {
    forward::ScopedMatmulObserver observe(&sums);
    std::vector<std::vector<float>> x = s.xs[0];
    for (int l = 0; l < cfg.n_layer; ++l) {
      for (auto& xc : x) {
        calib::run_block(xc.data(), T, w.layers[size_t(l)], cfg.layers[size_t(l)], cfg, s.ropes[size_t(l)],
                         calib::Stage::kOut, s.buf);
        progress.add(1);
      }
      s.xs[size_t(l + 1)] = x;
    }
    for (const auto& xc : s.xs.back()) {
      calib::run_head(s.logits, xc.data(), T, w.output_norm, w.output, cfg, s.buf);
      log_softmax_rows(s.logits, T, w.output.rows);
      s.ref.push_back(s.logits);
      progress.add(1);
    }
  }
  progress.finish();
  s.imatrix = imatrix ? *imatrix : sums.means(opt.data, uint32_t(s.chunks.ids.size()));
}

KlProbe::~KlProbe() = default;

const Imatrix& KlProbe::imatrix() const { return st_->imatrix; }
int KlProbe::ctx() const { return st_->chunks.ctx; }
int KlProbe::chunks() const { return int(st_->chunks.ids.size()); }
bool KlProbe::has_tensor(const std::string& name) const { return st_->places.count(name) > 0; }

uint64_t KlProbe::cost(const std::string& name, size_t n_types) const {
  const auto it = st_->places.find(name);
  if (it == st_->places.end()) return 0;
  const int n_layer = st_->model->config().n_layer;
  const int first = std::max(0, it->second.layer);
  return uint64_t(n_layer - std::min(first, n_layer) + 1) * st_->chunks.ids.size() * n_types;
}

std::vector<double> KlProbe::sensitivity(const std::string& name, const std::vector<DType>& types, Progress* progress) {
  State& s = *st_;
  const auto it = s.places.find(name);
  TEMPER_CHECK(it != s.places.end(), "sensitivity: no matrix '", name, "' in the model");
  const Place p = it->second;
  const forward::Weights& w = s.w();
  const int n_layer = s.model->config().n_layer;
  std::vector<double> out;
  for (DType t : types) {
    std::vector<LayerWeights> layers = w.layers;
    std::vector<uint8_t> store;
    if (p.layer < 0) {  // the embedding (and, tied, the output)
      const Matrix q = s.quantized(w.token_embd, name, t, store);
      out.push_back(s.run_kl(0, calib::embed_chunks(s.chunks, q, *s.model), layers, s.tied() ? q : w.output, progress));
    } else if (p.layer == n_layer) {
      const Matrix q = s.quantized(w.output, name, t, store);
      out.push_back(s.run_kl(n_layer, s.xs.back(), layers, q, progress));
    } else {
      s.swap_in(layers, p, t, store);
      out.push_back(s.run_kl(p.layer, s.xs[size_t(p.layer)], layers, w.output, progress));
    }
  }
  return out;
}

double KlProbe::mix_kl(const std::map<std::string, DType>& types) {
  State& s = *st_;
  const forward::Weights& w = s.w();
  std::vector<LayerWeights> layers = w.layers;
  std::vector<std::vector<uint8_t>> stores(types.size());
  Matrix embd = w.token_embd, out = w.output;
  size_t i = 0;
  for (const auto& [name, t] : types) {
    const auto it = s.places.find(name);
    TEMPER_CHECK(it != s.places.end(), "sensitivity: no matrix '", name, "' in the model");
    const Place p = it->second;
    std::vector<uint8_t>& store = stores[i++];
    if (p.layer < 0) {
      embd = s.quantized(w.token_embd, name, t, store);
      if (s.tied()) out = embd;
    } else if (p.layer == s.model->config().n_layer) {
      out = s.quantized(w.output, name, t, store);
    } else {
      s.swap_in(layers, p, t, store);
    }
  }
  return s.run_kl(0, calib::embed_chunks(s.chunks, embd, *s.model), layers, out, nullptr);
}

}  // namespace temper
