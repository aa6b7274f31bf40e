// temper imatrix (see imatrix.h).
#include "imatrix.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/log.h"
#include "eval_model.h"
#include "forward/matmul_observer.h"
#include "quantize/imatrix.h"
#include "train/data_chat.h"

namespace temper::verify {
namespace {

// llama-imatrix's batching (common_params defaults and compute_imatrix).
constexpr int kLlamaBatch = 2048, kLlamaUbatch = 512, kLlamaMinRows = 16;

// Per-column sums of x² for every blk.* matrix, in double (llama.cpp sums in f32; the test's
// tolerance covers that).
class Collector : public forward::MatmulObserver {
 public:
  explicit Collector(const forward::Weights& w) : w_(w) {}
  // Rows of the dense products of the next eval: keep[t] says whether token t counts.
  void set_dense_rows(std::vector<uint8_t> keep) { keep_ = std::move(keep); }

  void on_matmul(const forward::Matrix& w, const float* x, int64_t n) override {
    const forward::MatrixName* name = forward::find_matrix(w_, w);
    if (!name || !name->gguf_name.starts_with("blk.")) return;
    Entry& e = entries_[name->gguf_name];
    const int64_t K = w.cols;
    const int n_mat = name->expert >= 0 ? name->n_expert : 1;
    if (e.sums.empty()) {
      e.sums.assign(size_t(n_mat * K), 0.0);
      e.counts.assign(size_t(n_mat), 0);
    }
    TEMPER_CHECK(int64_t(e.sums.size()) == n_mat * K, "imatrix: '", name->gguf_name, "' seen with two sizes");
    const int m = std::max(name->expert, 0);
    double* acc = &e.sums[size_t(m * K)];
    if (name->expert < 0)
      TEMPER_CHECK(size_t(n) == keep_.size(), "imatrix: '", name->gguf_name, "' multiplied ", n, " rows, expected ",
                   keep_.size());
    for (int64_t t = 0; t < n; ++t) {
      if (name->expert < 0 && !keep_[size_t(t)]) continue;
      const float* r = x + t * K;
      for (int64_t j = 0; j < K; ++j) acc[j] += double(r[j]) * double(r[j]);
      ++e.counts[size_t(m)];
    }
  }

  ImatrixData data() const {
    ImatrixData d;
    for (const auto& [name, e] : entries_) {
      ImatrixSums s;
      s.sums.assign(e.sums.begin(), e.sums.end());
      s.counts = e.counts;
      d.entries.emplace(name, std::move(s));
    }
    return d;
  }

 private:
  struct Entry {
    std::vector<double> sums;
    std::vector<int64_t> counts;
  };
  const forward::Weights& w_;
  std::vector<uint8_t> keep_;
  std::map<std::string, Entry> entries_;
};

// Chat records rendered with the model's template (train's reader), every token kept, one
// stream: each conversation starts with the BOS its template writes.
std::vector<int32_t> chat_tokens(const std::string& path, const EvalModel& m) {
  TEMPER_CHECK(file_exists(path) && !is_directory(path), "data file ", path, ": no such file");
  train::ChatDataOptions opt;
  opt.seq = INT_MAX;
  opt.train_on = train::TrainOn::kAll;
  opt.chat_template = m.chat_template();
  train::ChatDataStats stats;
  std::vector<int32_t> out;
  train::for_each_chat_example(path, *m.tok, opt, stats, [&](train::Example&& ex) {
    // A conversation that renders to its BOS alone holds no text.
    if (ex.tokens.size() > 1 || (ex.tokens.size() == 1 && ex.tokens[0] != m.tok->bos()))
      out.insert(out.end(), ex.tokens.begin(), ex.tokens.end());
  });
  TEMPER_CHECK(!out.empty(), "data file ", path, ": ", stats.records, " records render to no text",
               stats.records == 0 ? " (the file has no records)" : "");
  return out;
}

}  // namespace

std::vector<int> llama_ubatch_rows(int ctx, int chunk, int n_chunk) {
  const int n_seq = std::max(1, kLlamaBatch / ctx);
  const int n_batch = std::min(kLlamaBatch, n_seq * ctx);
  const int n_ubatch = std::min(kLlamaUbatch, n_batch);
  // Chunks are evaluated n_seq at a time; with n_seq > 1 the KV cache has one stream per
  // sequence and llama.cpp splits a batch "equally": each micro-batch takes n_ubatch / s tokens
  // of each of the s sequences.
  const int s = std::min(n_seq, n_chunk - (chunk / n_seq) * n_seq);
  std::vector<int> rows(static_cast<size_t>(ctx));
  const int k = n_ubatch / s;
  for (int b0 = 0; b0 < ctx; b0 += n_batch)  // s == 1 when a chunk spans several batches
    for (int u0 = b0; u0 < std::min(ctx, b0 + n_batch); u0 += k) {
      const int len = std::min({k, ctx - u0, b0 + n_batch - u0});
      for (int t = u0; t < u0 + len; ++t) rows[size_t(t)] = s * len;
    }
  return rows;
}

ImatrixReport run_imatrix(const ImatrixOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  TEMPER_CHECK(o.text.empty() != o.data.empty(), "imatrix needs exactly one of --text FILE or --data FILE.jsonl");
  TEMPER_CHECK(o.ctx >= 2, "--ctx must be at least 2, got ", o.ctx);
  std::vector<std::string> inputs = {o.model, o.text.empty() ? o.data : o.text};
  // Checked before the run: an unwritable or existing output should not cost one.
  { AtomicOutput probe(o.output, o.overwrite, inputs); }
  const auto m = load_eval_model(o.model);
  const std::string source = o.text.empty() ? o.data : o.text;
  std::vector<int32_t> tokens;
  if (!o.text.empty()) {
    TEMPER_CHECK(file_exists(o.text) && !is_directory(o.text), "text file ", o.text, ": no such file");
    tokens = m->tok->encode(read_text_file(o.text), /*add_special=*/true, /*parse_special=*/false);
  } else {
    tokens = chat_tokens(o.data, *m);
  }
  TEMPER_CHECK(int64_t(tokens.size()) >= o.ctx, source, ": ", tokens.size(), " tokens, but one --ctx ", o.ctx,
               " chunk needs ", o.ctx, " (", o.ctx - int64_t(tokens.size()),
               " more); give more text or a smaller --ctx");
  const int n_max = int(tokens.size() / size_t(o.ctx));
  const int n_chunk = o.chunks > 0 ? std::min(o.chunks, n_max) : n_max;
  if (o.ctx > m->n_ctx_train() && m->n_ctx_train() > 0)
    warn("--ctx ", o.ctx, " is longer than the model's training context (", m->n_ctx_train(), ")");

  Collector collector(m->model->weights());
  forward::Session session(*m->model, o.ctx);
  const int32_t bos = m->tok->bos();
  Progress progress("imatrix", uint64_t(n_chunk) * uint64_t(o.ctx), /*bytes=*/false);
  {
    forward::ScopedMatmulObserver scope(&collector);
    std::vector<int32_t> chunk(size_t(o.ctx));
    for (int c = 0; c < n_chunk; ++c) {
      std::copy_n(tokens.begin() + int64_t(c) * o.ctx, o.ctx, chunk.begin());
      if (bos >= 0) chunk[0] = bos;
      const std::vector<int> rows = llama_ubatch_rows(o.ctx, c, n_chunk);
      std::vector<uint8_t> keep(rows.size());
      for (size_t t = 0; t < rows.size(); ++t) keep[t] = rows[t] >= kLlamaMinRows;
      collector.set_dense_rows(std::move(keep));
      session.reset();
      session.eval(chunk, /*all_logits=*/true);
      progress.add(uint64_t(o.ctx));
    }
  }
  progress.finish();

  ImatrixData d = collector.data();
  d.datasets = {source};
  d.chunks = uint32_t(n_chunk);
  d.chunk_size = uint32_t(o.ctx);
  TEMPER_CHECK(!d.entries.empty(), o.model, ": the forward pass multiplied no blk.* matrix");
  if (o.legacy_dat)
    write_imatrix_dat(d, o.output, o.overwrite, inputs);
  else
    write_imatrix_gguf(d, o.output, o.overwrite, inputs);

  ImatrixReport r;
  r.output = o.output;
  r.format = o.legacy_dat ? "dat" : "gguf";
  r.ctx = o.ctx;
  r.chunks = n_chunk;
  r.tokens = int64_t(n_chunk) * o.ctx;
  r.available = int64_t(tokens.size());
  r.entries = d.entries.size();
  for (const auto& [name, e] : d.entries)
    for (size_t i = 0; i < e.counts.size(); ++i)
      if (e.counts[i] < o.min_tokens) r.few.push_back({name, e.counts.size() > 1 ? int(i) : -1, e.counts[i]});
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

void print_imatrix(const ImatrixReport& r, int64_t min_tokens) {
  info("imatrix: ", r.chunks, " chunks of ", r.ctx, " tokens (", r.tokens, " of ", r.available, " tokens), ", r.entries,
       " matrices, ", r.seconds > 0 ? int64_t(double(r.tokens) / r.seconds) : 0, " tokens/s");
  if (!r.few.empty()) {
    int64_t zero = 0;
    for (const auto& f : r.few) zero += f.count == 0;
    warn(r.few.size(), " matrices/experts saw fewer than ", min_tokens, " tokens (", zero,
         " none; llama-quantize then uses 1 for an unused expert's weights):");
    const size_t shown = std::min<size_t>(r.few.size(), 20);
    for (size_t i = 0; i < shown; ++i) {
      const auto& f = r.few[i];
      warn("  ", escaped(f.tensor), f.expert >= 0 ? cat(" expert ", f.expert) : std::string(), ": ", f.count, " tokens");
    }
    if (shown < r.few.size()) warn("  ... and ", r.few.size() - shown, " more (see --json)");
  }
  info("wrote ", r.output, " (", r.format, ")");
}

Json imatrix_json(const ImatrixReport& r) {
  Json few = Json::array();
  for (const auto& f : r.few) few.push_back({{"tensor", f.tensor}, {"expert", f.expert}, {"count", f.count}});
  return {{"output", r.output}, {"format", r.format}, {"ctx", r.ctx}, {"chunks", r.chunks}, {"tokens", r.tokens},
          {"available_tokens", r.available}, {"entries", r.entries}, {"seconds", r.seconds},
          {"tokens_per_second", r.seconds > 0 ? double(r.tokens) / r.seconds : 0.0}, {"few_tokens", few}};
}

}  // namespace temper::verify
