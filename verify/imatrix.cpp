// temper imatrix (see imatrix.h).
#include "imatrix.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/log.h"
#include "eval_model.h"
#include "forward/matmul_observer.h"
#include "quantize/imatrix.h"
#include "quantize/imatrix_collect.h"
#include "train/data_chat.h"

namespace temper::verify {
namespace {

// llama-imatrix's batching (common_params defaults and compute_imatrix).
constexpr int kLlamaBatch = 2048, kLlamaUbatch = 512, kLlamaMinRows = 16;

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
    tokens = train::chat_token_stream(o.data, *m->tok, m->chat_template(), "data file " + o.data);
  }
  TEMPER_CHECK(int64_t(tokens.size()) >= o.ctx, source, ": ", tokens.size(), " tokens, but one --ctx ", o.ctx,
               " chunk needs ", o.ctx, " (", o.ctx - int64_t(tokens.size()),
               " more); give more text or a smaller --ctx");
  const int n_max = int(tokens.size() / size_t(o.ctx));
  const int n_chunk = o.chunks > 0 ? std::min(o.chunks, n_max) : n_max;
  if (o.ctx > m->n_ctx_train() && m->n_ctx_train() > 0)
    warn("--ctx ", o.ctx, " is longer than the model's training context (", m->n_ctx_train(), ")");

  ImatrixCollector collector(m->model->weights(), /*blk_only=*/true);
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
