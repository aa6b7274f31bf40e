// HF folder -> temper checkpoint. Reads the description and every safetensors header first
// (so bad input fails before any output work), checks the tensor set against the
// architecture's table, then streams tensor by tensor into the HDF5 file.
#include "convert.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "model/model_desc.h"
#include "read_pipe.h"
#include "tokenizer/tokenizer.h"

namespace temper {
namespace fs = std::filesystem;

namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// One tensor to write: where it comes from and the name it gets in the checkpoint.
struct PlannedTensor {
  const TensorInfo* source;
  std::string name;  // canonical HF name
};

struct Plan {
  std::vector<PlannedTensor> tensors;
  std::vector<std::string> skipped;
};

// Matches the checkpoint's tensors against what the architecture expects. Every tensor is
// either planned, skipped with a stated reason, or refused: nothing is dropped silently.
Plan plan_tensors(const ModelDescription& desc, const SafetensorsModel& st) {
  const ArchSpec& arch = *desc.arch;
  std::map<std::string, const TensorInfo*> by_canonical;
  std::map<std::string, size_t> tower_counts;
  Plan plan;
  for (const auto& t : st.tensors()) {
    auto canon = arch.canonical_name(t.name);
    if (!canon) {
      // Group tower tensors by their first two name components for a one-line note each.
      auto dot = t.name.find('.', t.name.find('.') + 1);
      ++tower_counts[t.name.substr(0, dot)];
      continue;
    }
    if (arch.ignorable && arch.ignorable(desc.config, *canon)) {
      plan.skipped.push_back(t.name + ": not used by the " + std::string(arch.id) + " text model");
      continue;
    }
    auto [it, inserted] = by_canonical.emplace(*canon, &t);
    TEMPER_CHECK(inserted, st.root(), ": tensors '", it->second->name, "' and '", t.name,
                 "' both map to '", *canon, "'");
  }
  for (const auto& [prefix, n] : tower_counts)
    plan.skipped.push_back(cat(prefix, ".* (", n, " tensors): vision/audio tower, not part of the text model"));

  std::set<std::string> used;
  for (const auto& e : expected_tensors(arch, desc.config)) {
    auto it = by_canonical.find(e.hf_name);
    if (it == by_canonical.end()) {
      TEMPER_CHECK(!e.required, st.root(), ": required tensor '", e.hf_name, "' (", shape_str(e.shape),
                   ") is missing from the checkpoint");
      continue;
    }
    const TensorInfo& t = *it->second;
    TEMPER_CHECK(t.shape == e.shape, st.root(), ": tensor '", t.name, "' has shape ", shape_str(t.shape),
                 ", but the config implies ", shape_str(e.shape));
    plan.tensors.push_back({&t, e.hf_name});
    used.insert(e.hf_name);
  }
  for (const auto& [canon, t] : by_canonical)
    TEMPER_CHECK(used.count(canon), st.root(), ": tensor '", t->name, "' is not part of the ", arch.id,
                 " architecture (config: ", desc.config.hf_architecture, ")");
  return plan;
}

}  // namespace

ConvertReport convert_hf_to_checkpoint(const ConvertOptions& opts) {
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = is_directory(opts.input) ? opts.input : fs::path(opts.input).parent_path().string();
  TEMPER_CHECK(file_exists(opts.input), opts.input, ": no such file or folder");

  // The safetensors headers first: the config is checked against the tensors before the
  // tokenizer is read (a vocab_size the embedding does not have must not be padded to).
  auto st = SafetensorsModel::open(opts.input);
  ModelDescription desc = load_hf_description(dir.empty() ? "." : dir, st->tensors());
  Plan plan = plan_tensors(desc, *st);
  // Build the tokenizer once, as eval/generate will: a checkpoint holding a tokenizer that
  // cannot load must not be written.
  try {
    (void)Tokenizer::from_assets(desc.tokenizer);
  } catch (const Error& e) {
    fail(dir.empty() ? "." : dir, ": the tokenizer cannot be built: ", e.what());
  }

  desc.provenance.source = canonical_path(dir.empty() ? "." : dir);
  desc.provenance.files = st->shard_files();
  desc.provenance.converter = "temper " TEMPER_VERSION;
  desc.provenance.created_utc = utc_now();

  // Never overwrite anything in the input folder, even with --force.
  std::vector<std::string> inputs;
  for (const auto& entry : fs::directory_iterator(st->root())) inputs.push_back(entry.path().string());
  AtomicOutput out(opts.output, opts.overwrite, inputs);

  ConvertReport report;
  report.arch = std::string(desc.arch->id);
  report.hf_architecture = desc.config.hf_architecture;
  report.output = opts.output;
  report.skipped = plan.skipped;
  for (const auto& s : plan.skipped) info("skipped ", s);

  uint64_t total = 0;
  for (const auto& p : plan.tensors) total += p.source->nbytes;
  {
    // One thread reads, this one writes (see ReadPipe); reading starts before the metadata.
    std::vector<const TensorInfo*> sources;
    for (const auto& p : plan.tensors) sources.push_back(p.source);
    ReadPipe pipe(*st, sources);
    CheckpointWriter writer(out.temp_path(), CheckpointWriteOptions{opts.zstd_level});
    writer.write_description(desc);
    Progress progress("convert", total);
    for (size_t i = 0; i < plan.tensors.size(); ++i) {
      const PlannedTensor& p = plan.tensors[i];
      TensorInfo info = *p.source;
      info.name = p.name;
      writer.write_tensor(info, [&](uint64_t offset, uint64_t max_len) { return pipe.next(i, offset, max_len); });
      progress.add(info.nbytes);
      report.n_params += info.numel();
      ++report.n_tensors;
    }
    writer.close();
  }
  out.commit();
  report.bytes_in = total;
  report.bytes_out = fs::file_size(opts.output);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace temper
