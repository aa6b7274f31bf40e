// Block-by-block calibration (see calibrate.h). The layer arithmetic is the runtime decoder's
// (runtime/forward/decoder.cpp) for dense blocks, step for step with the runtime's own kernels,
// stopped at the input of the matrix group being quantized.
//
// Glossary: T = tokens per chunk, H = d_model, K = a matrix's input width, C = chunks.
#include "quantize/calibrate.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "forward/forward.h"
#include "forward/kernels.h"
#include "forward/matmul.h"
#include "forward/weights.h"
#include "quant/quant.h"
#include "quantize/block_codes.h"
#include "quantize/block_runner.h"
#include "quantize/gptq.h"
#include "tokenizer/tokenizer.h"

namespace temper {
namespace {

using forward::LayerWeights;
using forward::Matrix;
using calib::Stage;
using calib::kGroups;

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
  calib::check_dense_blocks(cfg, input, "--calibrate");
  const TokenizerSource tsrc = om.format == ModelFormat::kGguf ? TokenizerSource::kGguf : TokenizerSource::kAuto;
  const Tokenizer tok = Tokenizer::from_assets(om.desc.tokenizer, tsrc);
  const calib::Chunks chunks = calib::load_chunks(om, tok, opt.data, opt.ctx, opt.tokens, opt.seed, "--calibrate");
  CalibrationResult res;
  res.ctx = chunks.ctx;
  res.available = chunks.available;
  res.chunks = int(chunks.ids.size());
  res.tokens = chunks.tokens();
  const int64_t T = res.ctx;

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
  std::vector<std::vector<float>> xs;
  {
    Matrix embd = w.token_embd;
    std::vector<uint8_t> qbytes;
    if (const auto* e = type_of(w.token_embd)) {
      const std::vector<float> f = calib::matrix_f32(w.token_embd);
      const size_t rb = quant::row_bytes(e->second, embd.cols);
      qbytes.resize(rb * size_t(embd.rows));
      const bool weighted = int64_t(opt.token_embd_weights.size()) == embd.cols;
      quant::quantize_rows(e->second, f.data(), qbytes.data(), embd.rows, embd.cols,
                           weighted ? opt.token_embd_weights.data() : nullptr);
      embd = {qbytes.data(), e->second, embd.rows, embd.cols, rb};
    }
    xs = calib::embed_chunks(chunks, embd, *model);
  }

  Json dump_index = Json::object();
  if (!opt.dump_dir.empty()) std::filesystem::create_directories(opt.dump_dir);
  // Quantized bytes the later stages run on: kept in `res` (the file's bytes) and viewed here.
  Progress progress("calibrate", uint64_t(cfg.n_layer) * (kGroups + 1) * uint64_t(res.chunks), /*bytes=*/false);
  calib::BlockBuffers buf;
  std::vector<float> tmp;
  GptqOptions gopt;
  gopt.passes = std::max(1, opt.iters);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerConfig& L = cfg.layers[size_t(l)];
    LayerWeights W = w.layers[size_t(l)];
    // As a session of T tokens applies it (LongRoPE: its factors for T, and the attention factor).
    const forward::RopeParams rope = forward::make_rope_params(cfg.rope_style, L, int(T));
    for (int g = 0; g < kGroups; ++g) {
      const Stage stage = Stage(g);
      const std::vector<Matrix*> mats = calib::group_matrices(W, stage);
      std::vector<calib::GroupTensor> tensors;
      for (const auto& gt : calib::group_tensors(w, mats))
        if (types.count(gt.name)) tensors.push_back(gt);
      if (tensors.empty()) {
        progress.add(uint64_t(res.chunks));
        continue;
      }
      const int64_t K = mats[size_t(tensors[0].index)]->cols;
      std::vector<double> h(size_t(K * K), 0.0);
      for (int c = 0; c < res.chunks; ++c) {
        const float* in = calib::run_block(xs[size_t(c)].data(), T, W, L, cfg, rope, stage, buf);
        accumulate_moments(h, in, T, K, 1.0 / double(res.tokens), tmp);
        progress.add(1);
      }
      std::string dump_file;
      if (!opt.dump_dir.empty()) {
        dump_file = cat("h_blk", l, "_group", g, ".npy");
        write_npy((std::filesystem::path(opt.dump_dir) / dump_file).string(), h, K);
      }
      for (const calib::GroupTensor& gt : tensors) {  // a fused tensor's row views are tuned as one
        const DType t = types.at(gt.name);
        const Matrix whole = calib::joined(mats, gt);
        const std::vector<float> f = calib::matrix_f32(whole);
        GptqResult r = gptq_quantize(t, f.data(), whole.rows, K, h, gopt);
        CalibratedTensor& ct = res.tensors[gt.name];
        ct = {t, std::move(r.bytes), r.error_gptq, r.error_plain, r.used_gptq};
        calib::split_into(mats, gt, {ct.bytes.data(), t, whole.rows, K, quant::row_bytes(t, K)});
        if (!dump_file.empty()) dump_index[gt.name] = dump_file;
      }
    }
    for (int c = 0; c < res.chunks; ++c) {  // the block's output, as quantized, feeds the next
      calib::run_block(xs[size_t(c)].data(), T, W, L, cfg, rope, Stage::kOut, buf);
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
