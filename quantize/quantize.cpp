// temper quantize: plan (types per tensor, as llama-quantize chooses them), then stream each
// tensor in row slabs: decode -> transform -> check finite -> encode -> write. Memory holds one
// slab of f32 rows and its encoding, plus whatever the source keeps mapped.
#include "quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/escape.h"
#include "core/file.h"
#include "core/half.h"
#include "core/log.h"
#include "formats/gguf.h"
#include "quant/quant.h"
#include "model/arch/common.h"
#include "quantize/calibrate.h"
#include "quantize/gguf_metadata.h"
#include "quantize/gguf_plan.h"
#include "quantize/imatrix.h"
#include "quantize/llama_compat.h"
#include "quantize/modelfile.h"
#include "quantize/policy.h"
#include "quantize/qat.h"

namespace temper {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSlabFloats = int64_t(16) << 20;  // 64 MiB of f32 rows per slab

DType parse_tensor_type(const std::string& name, const char* flag) {
  auto t = dtype_from_name(name);
  TEMPER_CHECK(t && (quant::supports(*t)), flag, ": unknown tensor type '", name,
               "' (use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs)");
  return *t;
}

PolicyModel policy_model_of(const ModelConfig& cfg, std::string arch) {
  PolicyModel m{std::move(arch), cfg.n_layer};
  if (!cfg.layers.empty()) {
    m.n_head = cfg.layers[0].n_head;
    m.n_head_kv = cfg.layers[0].n_head_kv;
  }
  for (const auto& l : cfg.layers) m.n_expert = std::max(m.n_expert, l.n_expert);
  return m;
}

// llama.cpp's hparams from a GGUF's own keys (requantizing).
PolicyModel policy_model_of(const GgufFile& f) {
  PolicyModel m;
  m.arch = f.get_string("general.architecture");
  auto first_u32 = [&](const std::string& key) -> int {
    const GgufValue* v = f.find_value(key);
    if (!v) return 0;
    if (v->is_array()) return v->count() ? int(v->as_array<int32_t>()[0]) : 0;
    return int(v->as<uint32_t>());
  };
  m.n_layer = first_u32(m.arch + ".block_count");
  m.n_head = first_u32(m.arch + ".attention.head_count");
  m.n_head_kv = first_u32(m.arch + ".attention.head_count_kv");
  if (m.n_head_kv == 0) m.n_head_kv = m.n_head;
  m.n_expert = first_u32(m.arch + ".expert_count");
  return m;
}

// One slab of f32 rows -> bytes of type t, in `out` (or, for f32, the rows themselves).
std::span<const uint8_t> encode_rows(DType t, const float* rows, int64_t n_rows, int64_t n_cols, const float* imatrix,
                                     ScratchBuffer<uint8_t>& out) {
  const int64_t n = n_rows * n_cols;
  switch (t) {
    case DType::kF32:
      return {reinterpret_cast<const uint8_t*>(rows), size_t(n) * 4};
    case DType::kF16:
    case DType::kBF16: {
      auto bytes = out.get(size_t(n) * 2);
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) h[i] = t == DType::kF16 ? f32_to_f16(rows[i]) : f32_to_bf16(rows[i]);
      return bytes;
    }
    default: {
      auto bytes = out.get(quant::row_bytes(t, n_cols) * size_t(n_rows));
      quant::quantize_rows(t, rows, bytes.data(), n_rows, n_cols, imatrix);
      return bytes;
    }
  }
}

void check_finite(const float* rows, int64_t n, int64_t first_index, const std::string& input, const std::string& tensor) {
  int64_t bad = n;  // the first non-finite element, found in parallel
#pragma omp parallel for schedule(static) reduction(min : bad) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(rows[i]) && i < bad) bad = i;
  if (bad < n)
    fail(input, ": tensor '", tensor, "' has ", rows[bad], " at element ", first_index + bad,
         "; refusing to quantize non-finite weights");
}

// Names up to 5 of `names` ("'a', 'b' and 3 more").
std::string some_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(names.size(), 5); ++i) out += cat(i ? ", '" : "'", escaped(names[i]), "'");
  if (names.size() > 5) out += cat(" and ", names.size() - 5, " more");
  return out;
}

// An imatrix made for another model: entries that name no tensor of this one, or whose size
// differs, are errors (llama-quantize would skip them silently, or quantize with the wrong
// weights); tensors the recipe quantizes with no entry are reported.
void check_imatrix_fits(const Imatrix& im, const std::vector<GgufTensorPlan>& plans,
                        const std::vector<TypeChoice>& choices, std::vector<std::string>& warnings) {
  std::map<std::string, const GgufTensorPlan*> by_name;
  for (const auto& p : plans) by_name.emplace(p.name, &p);
  std::vector<std::string> unknown, wrong_size, missing;
  for (const auto& [name, v] : im.entries) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      unknown.push_back(name);
      continue;
    }
    const GgufTensorPlan& p = *it->second;
    const uint64_t want = uint64_t(p.ne[0]) * uint64_t(p.ne.size() >= 3 ? p.ne[2] : 1);
    if (v.size() != want && name != "token_embd.weight" && name != "per_layer_token_embd.weight")
      wrong_size.push_back(cat(name, " (", v.size(), " values, the tensor needs ", want, ")"));
  }
  TEMPER_CHECK(unknown.empty(), im.file, ": ", unknown.size(), " of ", im.entries.size(),
               " imatrix entries name no tensor of the model: ", some_names(unknown),
               "; was it made for another model?");
  TEMPER_CHECK(wrong_size.empty(), im.file, ": ", wrong_size.size(), " imatrix entries do not fit the model's tensors: ",
               some_names(wrong_size), "; was it made for another model?");
  for (size_t i = 0; i < plans.size(); ++i)
    if (choices[i].quantized && plans[i].name.starts_with("blk.") && !im.entries.count(plans[i].name))
      missing.push_back(plans[i].name);
  if (!missing.empty())
    warnings.push_back(cat(im.file, " has no entry for ", missing.size(), " quantized tensors (", some_names(missing),
                           "): they are quantized without importance weights"));
}

// --calibrate: every tensor the recipe quantizes to a block type is tuned on the calibration
// data (quantize/calibrate.h); the result's bytes replace ggml's rounding when written.
CalibrationResult calibrate_tensors(const QuantizeOptions& o, const OpenedModel& model,
                                    const std::vector<GgufTensorPlan>& plans, const std::vector<TypeChoice>& choices,
                                    const Imatrix& imatrix, QuantizeReport& report) {
  std::map<std::string, DType> types;
  for (size_t i = 0; i < plans.size(); ++i)
    if (choices[i].quantized && dtype_traits(choices[i].type).block_elems > 1) types[plans[i].name] = choices[i].type;
  TEMPER_CHECK(!types.empty(), "--calibrate: ", report.file_type,
               " quantizes no tensor to a block type, so there is nothing to tune; choose a quantized type");
  CalibrateOptions copt = o.calibrate;
  if (auto it = imatrix.entries.find("token_embd.weight"); it != imatrix.entries.end())
    copt.token_embd_weights = it->second;  // the file's embedding is rounded with them (--target-bpw)
  CalibrationResult r = calibrate_model(model, types, copt);
  report.calib_ctx = r.ctx;
  report.calib_chunks = r.chunks;
  for (auto& row : report.tensors) {
    auto it = r.tensors.find(row.name);
    if (it == r.tensors.end()) continue;
    row.calib_error = it->second.used_gptq ? it->second.error_gptq : it->second.error_plain;
    row.calib_error_plain = it->second.error_plain;
    ++report.calib_tensors;
    report.calib_gptq += it->second.used_gptq;
  }
  return r;
}

// Tuned bytes are in the model's row order; a Llama q/k tensor's GGUF rows are permuted
// (kPermuteRopeQ/K), and the rows of a block type are independent, so the rows move whole.
std::vector<uint8_t> rows_in_gguf_order(const GgufTensorPlan& p, const CalibratedTensor& t, bool gguf_input) {
  if (gguf_input || p.permute_heads == 0) return t.bytes;
  const int64_t n = p.n_rows();
  const size_t rb = t.bytes.size() / size_t(n);
  std::vector<float> from(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) from[size_t(r)] = float(r);  // exact below 2^24 rows
  arch::permute_rope_rows(from.data(), n, 1, p.permute_heads);
  std::vector<uint8_t> out(t.bytes.size());
  for (int64_t r = 0; r < n; ++r) std::copy_n(&t.bytes[size_t(from[size_t(r)]) * rb], rb, &out[size_t(r) * rb]);
  return out;
}

}  // namespace

QuantizeReport quantize_model(const QuantizeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  PolicyOptions popts;
  popts.ftype = parse_file_type(o.type);
  popts.pure = o.pure;
  if (!o.output_tensor_type.empty()) popts.output_type = parse_tensor_type(o.output_tensor_type, "--output-tensor-type");
  if (!o.token_embedding_type.empty())
    popts.token_embd_type = parse_tensor_type(o.token_embedding_type, "--token-embedding-type");
  for (const auto& spec : o.tensor_types) {
    const auto eq = spec.rfind('=');
    TEMPER_CHECK(eq != std::string::npos && eq > 0, "--tensor-type '", spec, "': expected REGEX=TYPE");
    popts.overrides.emplace_back(spec.substr(0, eq), parse_tensor_type(spec.substr(eq + 1), "--tensor-type"));
  }
  Imatrix imatrix;
  if (!o.imatrix.empty()) {
    imatrix = load_imatrix(o.imatrix);
    popts.has_imatrix = true;
  }
  const bool calibrating = !o.calibrate.data.empty();
  if (calibrating) {
    TEMPER_CHECK(o.imatrix.empty(), "--calibrate collects its own importance weights; drop --imatrix");
    popts.has_imatrix = true;  // llama.cpp's imatrix-aware type choices: the size of an --imatrix file
  }

  // The source and its plan.
  QuantizeReport report;
  report.file_type = std::string(file_type_info(popts.ftype).name);
  std::unique_ptr<GgufFile> gguf;
  OpenedModel model;
  std::vector<GgufTensorPlan> plans;
  PolicyModel pm;
  GgufKvList kvs;
  std::vector<std::string> inputs = {o.input};
  if (detect_model_format(o.input) == ModelFormat::kGguf) {
    gguf = std::make_unique<GgufFile>(o.input);
    plans = plan_from_gguf(*gguf);
    for (const auto& p : plans) {
      if (dtype_traits(p.base_type).block_elems == 1) continue;
      TEMPER_CHECK(o.allow_requantize, o.input, ": already quantized (tensor '", p.name, "' is ", dtype_name(p.base_type),
                   "); requantizing compounds the error of both quantizations — quantize the original checkpoint, "
                   "or pass --allow-requantize");
      report.warnings.push_back("requantizing already-quantized tensors: quality will be worse than quantizing the original");
      break;
    }
    pm = policy_model_of(*gguf);
    for (const auto& kv : gguf->kvs())
      if (kv.key != "general.file_type" && kv.key != "general.quantization_version" && kv.key != "general.alignment")
        kvs.emplace_back(kv.key, kv.value);
    kvs.emplace_back("general.quantization_version", GgufValue::scalar<uint32_t>(2));
    kvs.emplace_back("general.file_type", GgufValue::scalar<uint32_t>(uint32_t(popts.ftype)));
  } else {
    model = open_model(o.input);
    plans = plan_gguf_tensors(model);
    pm = policy_model_of(model.desc.config, std::string(model.desc.arch->gguf_arch));
    kvs = gguf_model_metadata(model.desc, popts.ftype);
    for (auto& w : check_llama_cpp_compat(model.desc, o.input, o.allow_llama_incompatible, kvs))
      report.warnings.push_back(std::move(w));
    inputs = model.files;
  }
  const TensorSource& src = gguf ? static_cast<const TensorSource&>(*gguf) : *model.tensors;

  std::vector<PolicyTensor> pts;
  for (const auto& p : plans) pts.push_back({p.name, p.base_type, p.ne, p.quant_class});
  auto choices = choose_tensor_types(pm, popts, pts);
  ScratchBuffer<float> rows_buffer;
  QatDetection qat;
  if (o.qat_detect) {
    qat = detect_q4_0_lattice(src, plans, rows_buffer);
    const std::string w = apply_qat_recipe(qat, popts.ftype, plans, choices);
    if (!w.empty()) report.warnings.push_back(w);
    report.qat = {true, qat.n_measured, qat.n_detected, qat.total.blocks - qat.total.zero, qat.total.on_lattice, 0, 0};
  }
  if (!imatrix.entries.empty()) check_imatrix_fits(imatrix, plans, choices, report.warnings);
  // --target-bpw and --calibrate run the model: a GGUF input is opened as one once, for both, and
  // an unwritable output is found before either costs a measurement.
  OpenedModel opened_gguf;
  auto runnable = [&]() -> const OpenedModel& {
    if (model.tensors) return model;
    if (!opened_gguf.tensors) opened_gguf = open_model(o.input);
    return opened_gguf;
  };
  if (!o.dry_run && (o.mix.enabled() || calibrating)) { AtomicOutput probe(o.output, o.overwrite, inputs); }
  if (o.mix.enabled()) {
    TEMPER_CHECK(!o.pure, "--pure and --target-bpw/--max-kld: the search chooses the types; drop --pure");
    MixOptions mo = o.mix;
    if (mo.sens.data.empty()) mo.sens.data = o.calibrate.data;
    report.mix = choose_mix(mo, runnable(), plans, choices, imatrix);
    const FileType ft = mix_file_type(plans, choices, popts.ftype);
    report.file_type = o.mix.target_bpw > 0 ? cat("mix for ", o.mix.target_bpw, " bpw") : cat("mix for KL ", o.mix.max_kld);
    for (auto& [key, value] : kvs)
      if (key == "general.file_type") value = GgufValue::scalar<uint32_t>(uint32_t(ft));
  }
  uint64_t source_bytes = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    uint64_t n = 1;
    for (int64_t d : plans[i].ne) n *= uint64_t(d);
    report.tensors.push_back({plans[i].name, plans[i].ne, choices[i].type, plans[i].base_type,
                              dtype_bytes(choices[i].type, n), choices[i].note});
    report.n_params += n;
    report.bytes += report.tensors.back().bytes;
    source_bytes += n * 4;
    if (choices[i].fallback) ++report.n_fallback;
  }
  if (report.mix.used && o.mix.target_bpw > 0 && report.bits_per_weight() < 0.99 * o.mix.target_bpw)
    report.warnings.push_back(cat("--target-bpw ", o.mix.target_bpw, ": the largest mix of these types has ",
                                  report.bits_per_weight(), " bits per weight; that is what is written"));
  if (report.n_fallback > 0)
    report.warnings.push_back(cat(report.n_fallback, " of ", plans.size(), " tensors have rows that fit no block of the "
                                  "chosen type and use a fallback type, as llama.cpp does (see --dry-run for which)"));
  if (o.write_modelfile && !file_type_info(popts.ftype).ollama_can_requantize)
    report.warnings.push_back(report.file_type + " is not a type `ollama create --quantize` can redo (it accepts F32, F16, "
                              "BF16, Q8_0, Q4_K_S, Q4_K_M); keep this GGUF, Ollama imports it as it is");
  report.output = o.output;
  if (o.dry_run) return report;

  // The imatrix entry of each tensor: ne[0] values per matrix (expert).
  auto imatrix_of = [&](const GgufTensorPlan& p) -> const std::vector<float>* {
    if (imatrix.entries.empty()) return nullptr;
    auto it = imatrix.entries.find(p.name);
    if (it == imatrix.entries.end()) return nullptr;
    const uint64_t want = uint64_t(p.ne[0]) * uint64_t(p.ne.size() >= 3 ? p.ne[2] : 1);
    if (it->second.size() != want) {
      TEMPER_CHECK(p.name == "token_embd.weight" || p.name == "per_layer_token_embd.weight", o.imatrix, ": entry '",
                   p.name, "' has ", it->second.size(), " values, the tensor needs ", want);
      return nullptr;
    }
    return &it->second;
  };

  CalibrationResult calib;
  if (calibrating) calib = calibrate_tensors(o, runnable(), plans, choices, imatrix, report);

  AtomicOutput out(o.output, o.overwrite, inputs);
  GgufWriter writer(out);
  for (auto& [key, value] : kvs) writer.add(key, value);
  if (!imatrix.entries.empty()) {
    writer.add_string("quantize.imatrix.file", imatrix.file);
    if (!imatrix.dataset.empty()) writer.add_string("quantize.imatrix.dataset", imatrix.dataset);
    writer.add_u32("quantize.imatrix.entries_count", uint32_t(imatrix.entries.size()));
    writer.add_u32("quantize.imatrix.chunks_count", imatrix.chunks);
  }
  if (calibrating) {
    writer.add_string("temper.calibrate.dataset", o.calibrate.data);
    writer.add_u32("temper.calibrate.tokens", uint32_t(int64_t(calib.chunks) * calib.ctx));
    writer.add_string("temper.calibrate.method", "gptq");
  }
  for (size_t i = 0; i < plans.size(); ++i) writer.add_tensor_ne(plans[i].name, choices[i].type, plans[i].ne);
  writer.write_header();

  Progress progress("quantize " + report.file_type, source_bytes);
  ScratchBuffer<uint8_t> encoded;
  for (size_t i = 0; i < plans.size(); ++i) {
    const GgufTensorPlan& p = plans[i];
    const DType t = choices[i].type;
    const std::vector<float>* im = choices[i].quantized ? imatrix_of(p) : nullptr;
    const bool exact = t == DType::kQ4_0 && !qat.tensors.empty() && qat.tensors[i].detected();
    const DType storage = exact ? storage_dtype(src, p) : DType::kF32;
    TEMPER_CHECK(!p.ne.empty() && p.ne[0] > 0, o.input, ": tensor '", escaped(p.name), "' is empty");
    if (auto it = calib.tensors.find(p.name); it != calib.tensors.end()) {
      TEMPER_CHECK(it->second.type == t, "--calibrate: '", p.name, "' was tuned as ", dtype_name(it->second.type));
      writer.write_tensor_data(p.name, rows_in_gguf_order(p, it->second, gguf != nullptr));
      progress.add(uint64_t(p.n_rows() * p.ne[0]) * 4);
      continue;
    }
    const int64_t slab_rows = std::max<int64_t>(1, kSlabFloats / p.ne[0]);
    for_each_slab(src, p, slab_rows, [&](const float* rows, int64_t first, int64_t n, int expert) {
      check_finite(rows, n * p.ne[0], first * p.ne[0], o.input, p.name);
      const float* slice = im ? im->data() + size_t(std::max(expert, 0)) * size_t(p.ne[0]) : nullptr;
      auto bytes = encode_rows(t, rows, n, p.ne[0], slice, encoded);
      if (exact) {  // ggml's blocks, then the lattice's where the values lie on it
        const int64_t replaced = make_q4_0_exact(rows, n * p.ne[0], storage, encoded.get(bytes.size()).data());
        report.qat.blocks_written_exact += replaced;
        report.qat.blocks_off_lattice += n * p.ne[0] / kQ4_0BlockElems - replaced;
      }
      writer.write_tensor_data(p.name, bytes);
      progress.add(uint64_t(n * p.ne[0]) * 4);
    }, rows_buffer);
  }
  writer.finish();
  progress.finish();
  if (report.qat.blocks_off_lattice > 0)
    report.warnings.push_back(cat(report.qat.blocks_off_lattice, " blocks of the tensors on the Q4_0 lattice are off it "
                                  "and were rounded as ggml does (not exactly)"));

  if (o.write_modelfile && model.tensors) {
    const fs::path gguf_path(o.output);
    report.modelfile = (gguf_path.parent_path() / (gguf_path.stem().string() + ".Modelfile")).string();
    AtomicOutput mf(report.modelfile, true, inputs);
    const std::string text = make_modelfile(model.desc, "./" + gguf_path.filename().string());
    mf.write(text.data(), text.size());
    mf.commit();
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace temper
