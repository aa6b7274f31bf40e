// `temper convert HF_DIR -o model.h5`
#include <CLI/CLI.hpp>
#include <cstdio>

#include "convert.h"
#include "core/json.h"
#include "core/log.h"

namespace temper {

void add_convert_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Convert a Hugging Face checkpoint folder to a temper checkpoint (.h5)");
  auto opts = std::make_shared<ConvertOptions>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("input", opts->input, "Hugging Face model folder (config.json, *.safetensors, tokenizer)")->required();
  cmd->add_option("-o,--output", opts->output, "Output checkpoint (.h5)")->required();
  cmd->add_flag("-f,--force", opts->overwrite, "Overwrite an existing output");
  cmd->add_option("--compress", opts->zstd_level, "zstd-compress tensors at this level (1-22; default off)")
      ->expected(0, 1)
      ->default_str("3")
      ->check(CLI::Range(0, 22));
  cmd->add_flag("--json", *json, "Print the report as JSON on stdout");
  cmd->callback([opts, json] {
    if (*json) set_log_level(LogLevel::kQuiet);
    ConvertReport r = convert_hf_to_checkpoint(*opts);
    if (*json) {
      Json j = {{"output", r.output},       {"arch", r.arch},
                {"hf_architecture", r.hf_architecture},
                {"tensors", r.n_tensors},   {"parameters", r.n_params},
                {"bytes_in", r.bytes_in},   {"bytes_out", r.bytes_out},
                {"seconds", r.seconds},     {"skipped", r.skipped}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      info("converted ", r.n_tensors, " tensors (", r.n_params, " parameters, ", human_bytes(double(r.bytes_in)),
           ") of ", r.hf_architecture, " [", r.arch, "] to ", r.output, " (", human_bytes(double(r.bytes_out)),
           ") in ", human_duration(r.seconds));
    }
  });
}

}  // namespace temper
