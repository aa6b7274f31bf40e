// Binds a TensorSource's tensors to the roles of the arch's tensor table (see weights.h).
#include "forward/weights.h"

#include <map>
#include <span>

#include "core/error.h"
#include "quant/quant.h"

namespace temper::forward {

namespace {

class Binder {
 public:
  Binder(const TensorSource& src, Weights& w) : src_(src), w_(w) {}

  // The tensor's bytes, read once: a view of the source's mapping, or bytes kept in w.owned.
  std::span<const uint8_t> bytes(const TensorInfo& t) {
    if (auto it = cache_.find(t.name); it != cache_.end()) return it->second;
    std::span<const uint8_t> s = src_.read(t, scratch_);
    const bool in_scratch = !scratch_.empty() && s.data() >= scratch_.data() &&
                            s.data() < scratch_.data() + scratch_.size();
    if (in_scratch) {
      w_.owned.push_back(std::move(scratch_));  // the heap buffer, and so `s`, stay valid
      scratch_ = {};
    }
    TEMPER_CHECK(s.size() == t.nbytes, "tensor '", t.name, "': read ", s.size(),
                 " bytes, expected ", t.nbytes);
    cache_.emplace(t.name, s);
    return s;
  }

 private:
  const TensorSource& src_;
  Weights& w_;
  std::vector<uint8_t> scratch_;
  std::map<std::string, std::span<const uint8_t>> cache_;
};

void check_dtype(const TensorInfo& t, int64_t cols) {
  TEMPER_CHECK(quant::supports(t.dtype), "tensor '", t.name, "': dtype ",
               dtype_traits(t.dtype).name, " is not supported by the forward pass");
  TEMPER_CHECK(cols % dtype_traits(t.dtype).block_elems == 0, "tensor '", t.name, "': row of ",
               cols, " elements is not a whole number of ", dtype_traits(t.dtype).name, " blocks");
}

// Field of `w` a matrix role binds to (nullptr: not a matrix role).
Matrix* matrix_slot(Weights& w, TensorRole role, int layer, int expert) {
  if (layer < 0) {
    switch (role) {
      case TensorRole::kTokenEmbd:
        return &w.token_embd;
      case TensorRole::kOutput:
        return &w.output;
      case TensorRole::kPleTokenEmbd:
        return &w.ple_token_embd;
      case TensorRole::kPleModelProj:
        return &w.ple_model_proj;
      default:
        return nullptr;
    }
  }
  LayerWeights& l = w.layers.at(layer);
  auto ex = [&]() -> ExpertWeights& { return l.experts.at(expert); };
  switch (role) {
    case TensorRole::kAttnQ:
      return &l.wq;
    case TensorRole::kAttnK:
      return &l.wk;
    case TensorRole::kAttnV:
      return &l.wv;
    case TensorRole::kAttnOut:
      return &l.wo;
    case TensorRole::kFfnGate:
      return &l.ffn_gate;
    case TensorRole::kFfnUp:
      return &l.ffn_up;
    case TensorRole::kFfnDown:
      return &l.ffn_down;
    case TensorRole::kFfnGateInp:
      return &l.router;
    case TensorRole::kFfnGateExps:
      return &ex().gate;
    case TensorRole::kFfnUpExps:
      return &ex().up;
    case TensorRole::kFfnDownExps:
      return &ex().down;
    case TensorRole::kFfnGateUpExps:
      return &ex().gate_up;
    case TensorRole::kPleInpGate:
      return &l.ple_gate;
    case TensorRole::kPleProj:
      return &l.ple_proj;
    default:
      return nullptr;
  }
}

Vector* vector_slot(Weights& w, TensorRole role, int layer) {
  if (layer < 0) {
    switch (role) {
      case TensorRole::kOutputNorm:
        return &w.output_norm;
      case TensorRole::kPleProjNorm:
        return &w.ple_proj_norm;
      default:
        return nullptr;
    }
  }
  LayerWeights& l = w.layers.at(layer);
  switch (role) {
    case TensorRole::kAttnNorm:
      return &l.attn_norm;
    case TensorRole::kAttnQNorm:
      return &l.q_norm;
    case TensorRole::kAttnKNorm:
      return &l.k_norm;
    case TensorRole::kPostAttnNorm:
      return &l.post_attn_norm;
    case TensorRole::kFfnNorm:
      return &l.ffn_norm;
    case TensorRole::kPostFfnNorm:
      return &l.post_ffn_norm;
    case TensorRole::kFfnGateInpScale:
      return &l.router_scale;
    case TensorRole::kFfnDownExpsScale:
      return &l.expert_scale;
    case TensorRole::kFfnPreNorm2:
      return &l.pre_ffn_norm_2;
    case TensorRole::kFfnPostNorm1:
      return &l.post_ffn_norm_1;
    case TensorRole::kFfnPostNorm2:
      return &l.post_ffn_norm_2;
    case TensorRole::kPlePostNorm:
      return &l.ple_post_norm;
    default:
      return nullptr;
  }
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i]);
  return out + "]";
}

}  // namespace

Weights bind_weights(const TensorSource& src, const ModelDescription& desc, NameScheme scheme) {
  TEMPER_CHECK(desc.arch != nullptr, "model description has no architecture");
  const ArchSpec& arch = *desc.arch;
  const ModelConfig& cfg = desc.config;
  std::map<std::string, const TensorInfo*, std::less<>> by_name;
  for (const TensorInfo& t : src.tensors()) {
    if (scheme == NameScheme::kGguf) {
      by_name.emplace(t.name, &t);
    } else if (auto canonical = arch.canonical_name(t.name)) {
      by_name.emplace(*canonical, &t);
    }
  }

  Weights w;
  w.layers.resize(cfg.n_layer);
  for (int l = 0; l < cfg.n_layer; ++l)
    if (cfg.layers[l].ffn != FfnKind::kDense) w.layers[l].experts.resize(cfg.layers[l].n_expert);
  Binder binder(src, w);

  for (const ExpectedTensor& e : expected_tensors(arch, cfg)) {
    const std::string& name = scheme == NameScheme::kGguf ? e.gguf_name : e.hf_name;
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      TEMPER_CHECK(!e.required, "tensor '", name, "' (", shape_text(e.shape),
                   ") is missing from the checkpoint");
      continue;
    }
    const TensorInfo& t = *it->second;
    const TensorRole role = e.spec->role;
    const std::span<const uint8_t> data = binder.bytes(t);

    if (role == TensorRole::kLayerScalar) {
      TEMPER_CHECK(t.numel() == 1, "tensor '", t.name, "' has shape ", shape_text(t.shape),
                   ", expected [1]");
      float v = 0;
      check_dtype(t, 1);
      quant::dequantize_row(t.dtype, data.data(), &v, 1);
      w.layers.at(e.layer).layer_scalar = v;
      continue;
    }
    if (Vector* v = vector_slot(w, role, e.layer)) {
      TEMPER_CHECK(t.shape == e.shape, "tensor '", t.name, "' has shape ", shape_text(t.shape),
                   ", expected ", shape_text(e.shape));
      check_dtype(t, int64_t(t.numel()));
      v->resize(t.numel());
      quant::dequantize_row(t.dtype, data.data(), v->data(), int64_t(t.numel()));
      continue;
    }
    // Matrices: (rows, cols) per tensor, or per expert of a stacked (E, rows, cols) tensor —
    // either one entry per expert (GGUF stacks them) or a 3-D table shape (fused experts).
    std::vector<int64_t> per_matrix = e.shape;
    int n_slices = 1;
    if (per_matrix.size() == 3) {
      n_slices = int(per_matrix[0]);
      per_matrix.erase(per_matrix.begin());
    }
    const bool stacked = e.expert >= 0 && t.shape.size() == 3;
    std::vector<int64_t> want = e.shape;
    if (stacked) want.insert(want.begin(), int64_t(cfg.layers.at(e.layer).n_expert));
    TEMPER_CHECK(t.shape == want && per_matrix.size() == 2, "tensor '", t.name, "' has shape ",
                 shape_text(t.shape), ", expected ", shape_text(want));
    check_dtype(t, per_matrix[1]);
    Matrix m;
    m.dtype = t.dtype;
    m.rows = per_matrix[0];
    m.cols = per_matrix[1];
    m.row_bytes = quant::row_bytes(t.dtype, m.cols);
    const size_t matrix_bytes = m.row_bytes * size_t(m.rows);
    if (is_fused_projection(role) && e.layer >= 0) {
      // One tensor, several matrices: each block's slot views its rows. The whole tensor is
      // named once, by its first block (the block at its first byte, which observers see first).
      const std::vector<RowBlock> blocks = fused_row_blocks(role, cfg.layers.at(e.layer));
      int64_t total = 0;
      for (const RowBlock& b : blocks) total += b.rows;
      TEMPER_CHECK(total == m.rows && matrix_bytes <= data.size(), "tensor '", t.name, "': ", m.rows,
                   " rows, but the config's blocks sum to ", total);
      m.data = data.data();
      int64_t first = 0;
      for (const RowBlock& b : blocks) {
        *matrix_slot(w, b.role, e.layer, -1) = m.slice_rows(first, b.rows);
        first += b.rows;
      }
      w.names.emplace(m.data, MatrixName{e.gguf_name, e.layer, -1, 0});
      continue;
    }
    for (int s = 0; s < n_slices; ++s) {
      const int expert = n_slices > 1 ? s : e.expert;
      const size_t offset = size_t(stacked ? e.expert : (n_slices > 1 ? s : 0)) * matrix_bytes;
      TEMPER_CHECK(offset + matrix_bytes <= data.size(), "tensor '", t.name, "': ", data.size(),
                   " bytes, too few for its shape");
      Matrix* slot = matrix_slot(w, role, e.layer, expert);
      TEMPER_CHECK(slot != nullptr, "tensor '", t.name, "': role has no slot in the forward pass");
      m.data = data.data() + offset;
      *slot = m;
      const int n_expert = expert >= 0 ? cfg.layers.at(e.layer).n_expert : 0;
      w.names.emplace(m.data, MatrixName{e.gguf_name, e.layer, expert, n_expert});
    }
  }
  if (cfg.tied_embeddings || !w.output) w.output = w.token_embd;
  return w;
}

const MatrixName* find_matrix(const Weights& w, const Matrix& m) {
  auto it = w.names.find(m.data);
  return it == w.names.end() ? nullptr : &it->second;
}

}  // namespace temper::forward
