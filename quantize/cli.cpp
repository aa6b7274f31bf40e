// `temper quantize MODEL -o model.gguf -t Q4_K_M`
#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "quantize.h"
#include "quantize/policy.h"
#include "quantize/qat.h"

namespace temper {
namespace {

std::string ne_str(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? "x" : "") + std::to_string(ne[i]);
  return s;
}

void print_table(const QuantizeReport& r) {
  std::printf("%-40s %-18s %-7s %12s %6s  %s\n", "tensor", "ne", "type", "bytes", "bpw", "note");
  for (const auto& t : r.tensors) {
    uint64_t n = 1;
    for (int64_t d : t.ne) n *= uint64_t(d);
    std::printf("%-40s %-18s %-7s %12llu %6.2f  %s\n", t.name.c_str(), ne_str(t.ne).c_str(),
                std::string(dtype_name(t.type)).c_str(), (unsigned long long)t.bytes, bits_per_weight(t.bytes, n),
                t.note.c_str());
  }
  std::printf("\n%s: %zu tensors, %llu parameters, %s, %.3f bits per weight\n", r.file_type.c_str(), r.tensors.size(),
              (unsigned long long)r.n_params, human_bytes(double(r.bytes)).c_str(), r.bits_per_weight());
}

// "QAT: 35 of 36 quantizable tensors lie on a Q4_0 lattice (100.0% of their blocks)".
std::string qat_line(const QatSummary& q) {
  std::string s = cat("QAT: ", q.tensors_on_lattice, " of ", q.tensors_measured,
                      " quantizable tensors lie on a Q4_0 lattice");
  if (q.tensors_on_lattice > 0)
    s += cat(" (", percent(q.blocks ? double(q.blocks_on_lattice) / double(q.blocks) : 0.0), " of their blocks)");
  return s;
}

Json qat_json(const QatSummary& q) {
  Json j = {{"checked", q.checked}, {"tensors_measured", q.tensors_measured},
            {"tensors_on_lattice", q.tensors_on_lattice}, {"blocks", q.blocks},
            {"blocks_on_lattice", q.blocks_on_lattice}};
  if (q.blocks_written_exact || q.blocks_off_lattice)
    j.update({{"blocks_written_exact", q.blocks_written_exact}, {"blocks_off_lattice", q.blocks_off_lattice}});
  return j;
}

// "--target-bpw 4.6: predicted KL 0.0123 (34 tensors searched), 0.0131 measured on 4 chunks of 512 tokens".
std::string mix_line(const MixReport& m) {
  return cat(m.target_bpw > 0 ? cat("--target-bpw ", m.target_bpw) : cat("--max-kld ", m.max_kld), ": predicted KL ",
             m.predicted_kl, " (sum over ", m.items.size(), " searched tensors), ", m.measured_kl,
             " measured with all of them quantized, on ", m.chunks, " chunks of ", m.ctx, " calibration tokens, in ",
             human_duration(m.seconds));
}

Json mix_json(const MixReport& m) {
  Json tensors = Json::array();
  for (size_t j = 0; j < m.items.size(); ++j) {
    Json opts = Json::array();
    for (const auto& o : m.items[j].options)
      opts.push_back({{"type", dtype_name(o.type)}, {"bytes", o.bytes}, {"kl", o.kl}});
    tensors.push_back({{"name", m.items[j].name}, {"chosen", dtype_name(m.items[j].options[size_t(m.pick[j])].type)},
                       {"options", opts}});
  }
  return {{"target_bpw", m.target_bpw}, {"max_kld", m.max_kld}, {"fixed_bytes", m.fixed_bytes},
          {"budget_bytes", m.budget_bytes}, {"predicted_kl", m.predicted_kl}, {"measured_kl", m.measured_kl},
          {"ctx", m.ctx}, {"chunks", m.chunks}, {"seconds", m.seconds}, {"tensors", tensors}};
}

Json report_json(const QuantizeReport& r, bool with_tensors) {
  Json j = {{"output", r.output},     {"file_type", r.file_type}, {"parameters", r.n_params},
            {"bytes", r.bytes},       {"bits_per_weight", r.bits_per_weight()},
            {"fallbacks", r.n_fallback}, {"warnings", r.warnings}, {"seconds", r.seconds}};
  if (!r.modelfile.empty()) j["modelfile"] = r.modelfile;
  if (r.qat.checked) j["qat"] = qat_json(r.qat);
  if (r.calib_tensors > 0) {
    Json t = Json::object();
    for (const auto& row : r.tensors)
      if (row.calib_error >= 0) t[row.name] = {{"error", row.calib_error}, {"error_plain", row.calib_error_plain}};
    j["calibration"] = {{"ctx", r.calib_ctx}, {"chunks", r.calib_chunks}, {"tensors", r.calib_tensors},
                        {"gptq_kept", r.calib_gptq}, {"errors", t}};
  }
  if (r.mix.used) j["mix"] = mix_json(r.mix);
  if (with_tensors) {
    j["tensors"] = Json::array();
    for (const auto& t : r.tensors)
      j["tensors"].push_back({{"name", t.name}, {"ne", t.ne}, {"type", dtype_name(t.type)},
                              {"source_type", dtype_name(t.base_type)}, {"bytes", t.bytes}, {"note", t.note}});
  }
  return j;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Write a GGUF (llama.cpp / Ollama) from a temper checkpoint or HF folder");
  auto o = std::make_shared<QuantizeOptions>();
  auto json = std::make_shared<bool>(false);
  std::string types;
  for (const auto& f : all_file_types()) types += (types.empty() ? "" : ", ") + std::string(f.name);
  cmd->add_option("input", o->input, "temper checkpoint (.h5), Hugging Face folder, or GGUF (F32/F16/BF16; others need --allow-requantize)")
      ->required();
  cmd->add_option("-o,--output", o->output, "Output GGUF (not needed with --dry-run)");
  cmd->add_option("-t,--type", o->type, "File type: " + types)->capture_default_str();
  cmd->add_flag("-f,--force", o->overwrite,
                "Overwrite an existing output; also write a model llama.cpp would misread (why is kept in the GGUF)");
  cmd->add_flag("--dry-run", o->dry_run, "Print each tensor's type, bytes and bits per weight; write nothing");
  cmd->add_flag("--pure", o->pure, "No mix: every quantizable tensor gets the file type's default");
  cmd->add_flag("--allow-requantize", o->allow_requantize, "Accept already-quantized GGUF input (loses quality)");
  cmd->add_flag("--modelfile", o->write_modelfile, "Also write an Ollama Modelfile beside the GGUF");
  cmd->add_option("--output-tensor-type", o->output_tensor_type, "Type of output.weight (and tied embeddings)");
  cmd->add_option("--token-embedding-type", o->token_embedding_type, "Type of token_embd.weight");
  cmd->add_option("--tensor-type", o->tensor_types, "REGEX=TYPE override; repeatable; first match wins");
  cmd->add_option("--imatrix", o->imatrix, "Importance matrix from llama-imatrix (.gguf or legacy .dat)");
  cmd->add_option("--calibrate", o->calibrate.data,
                  "Tune the rounding on this text (or chat .jsonl, rendered with the model's template): GPTQ "
                  "block by block on the quantized model's own activations; standard ggml blocks");
  cmd->add_option("--calib-tokens", o->calibrate.tokens, "Calibration tokens (whole chunks)")->capture_default_str();
  cmd->add_option("--calib-ctx", o->calibrate.ctx, "Calibration chunk length (each starts with BOS)")
      ->capture_default_str();
  cmd->add_option("--iters", o->calibrate.iters, "GPTQ passes per matrix (>1: block scales re-chosen)")
      ->capture_default_str();
  cmd->add_option("--seed", o->calibrate.seed, "Which chunks of a longer text calibrate (0: the first ones)")
      ->capture_default_str();
  cmd->add_option("--calib-dump", o->calibrate.dump_dir, "Write each matrix group's input moments H (.npy) here")
      ->group("");
  cmd->add_option("--target-bpw", o->mix.target_bpw,
                  "Choose each tensor's type by its measured KL so the file has this many bits per weight "
                  "(needs --bpw-data or --calibrate text)");
  cmd->add_option("--max-kld", o->mix.max_kld, "Choose the smallest mix whose predicted KL is at most this");
  cmd->add_option("--bpw-data", o->mix.sens.data,
                  "Text (or chat .jsonl) to measure the KL on for --target-bpw/--max-kld (default: --calibrate's); "
                  "without --imatrix the importance matrix is collected from it too");
  cmd->add_option("--bpw-tokens", o->mix.sens.tokens, "Tokens the KL is measured on (whole chunks of --calib-ctx)")
      ->capture_default_str();
  cmd->add_flag_function("--no-qat-detect", [o](int64_t) { o->qat_detect = false; },
                "Do not measure whether weights lie on a Q4_0 lattice (a checkpoint trained for Q4_0)");
  cmd->add_flag("--json", *json, "Print the report as JSON on stdout");
  cmd->callback([o, json] {
    // A usage error (exit 2) like any other missing option; --dry-run writes nothing.
    if (o->output.empty() && !o->dry_run) throw CLI::RequiredError("--output");
    o->allow_llama_incompatible = o->overwrite;
    o->mix.sens.ctx = o->calibrate.ctx;
    o->mix.sens.seed = o->calibrate.seed;
    if (*json) set_log_level(LogLevel::kQuiet);
    QuantizeReport r = quantize_model(*o);
    for (const auto& w : r.warnings) warn(w);
    if (!*json && r.qat.checked && (r.qat.tensors_on_lattice > 0 || o->dry_run)) info(qat_line(r.qat));
    if (*json) {
      std::printf("%s\n", report_json(r, o->dry_run).dump(2).c_str());
    } else if (o->dry_run) {
      print_table(r);
      if (r.mix.used) info(mix_line(r.mix));
    } else {
      char bpw[16];
      std::snprintf(bpw, sizeof bpw, "%.2f", r.bits_per_weight());
      info("wrote ", r.output, ": ", r.file_type, ", ", human_bytes(double(r.bytes)), ", ", bpw, " bits per weight, in ",
           human_duration(r.seconds));
      if (r.calib_tensors > 0)
        info("calibrated ", r.calib_tensors, " tensors on ", r.calib_chunks, " chunks of ", r.calib_ctx, " tokens (GPTQ kept for ",
             r.calib_gptq, ", ggml's imatrix rounding for the rest)");
      if (r.mix.used) info(mix_line(r.mix));
      if (!r.modelfile.empty()) info("wrote ", r.modelfile, " (import: ollama create NAME -f ", r.modelfile, ")");
    }
  });
}

}  // namespace temper
