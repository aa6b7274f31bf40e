// `temper lora export|import|merge` (adapters/lora.h).
#include <CLI/CLI.hpp>
#include <memory>

#include "adapters/lora.h"
#include "core/error.h"
#include "core/escape.h"

namespace temper {

namespace {

void add_export(CLI::App* lora) {
  auto* cmd = lora->add_subcommand("export", "Write an adapter as a GGUF LoRA (llama.cpp, Ollama ADAPTER) or a PEFT folder");
  struct Opts {
    std::string adapter, base, gguf, peft, type = "F32";
    bool force = false, modelfile = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("adapter", o->adapter, "Adapter .h5 (temper train or lora import)")->required();
  cmd->add_option("--gguf", o->gguf, "Write a llama.cpp GGUF LoRA adapter here (needs --base)");
  cmd->add_option("--base", o->base, "The base model (HF folder, .h5 or GGUF): its architecture and tensor names (--peft: needed for fused tensors, e.g. Phi-3)");
  cmd->add_option("--type", o->type, "GGUF LoRA tensor type: F32, F16, BF16 or Q8_0")->capture_default_str();
  cmd->add_option("--peft", o->peft, "Write a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)");
  cmd->add_flag("--modelfile", o->modelfile,
                "With --gguf and a GGUF --base: also write an Ollama Modelfile (FROM base, ADAPTER this file)");
  cmd->add_flag("--force", o->force, "Overwrite existing outputs");
  cmd->callback([o] {
    if (o->gguf.empty() == o->peft.empty()) throw CLI::ValidationError("--gguf/--peft", "give exactly one of them");
    if (o->modelfile && o->gguf.empty()) throw CLI::ValidationError("--modelfile", "needs --gguf");
    if (!o->peft.empty()) {
      export_lora_peft(o->adapter, o->peft, o->force, o->base);
      return;
    }
    if (o->base.empty()) throw CLI::ValidationError("--base", "--gguf needs the base model (--base BASE)");
    const auto t = dtype_from_name(o->type);
    if (!t) throw CLI::ValidationError("--type", o->type + ": expected F32, F16, BF16 or Q8_0");
    export_lora_gguf({o->adapter, o->base, o->gguf, *t, o->force, o->modelfile});
  });
}

void add_import(CLI::App* lora) {
  auto* cmd = lora->add_subcommand("import", "Read a PEFT LoRA folder into temper's adapter file, checked against the base");
  struct Opts {
    std::string dir, base, output;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("peft_dir", o->dir, "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")->required();
  cmd->add_option("--base", o->base, "The base model it was trained on (HF folder, .h5 or GGUF)")->required();
  cmd->add_option("-o,--output", o->output, "Adapter .h5 to write")->required();
  cmd->add_flag("--force", o->force, "Overwrite an existing output");
  cmd->callback([o] { import_lora_peft(o->dir, o->base, o->output, o->force); });
}

void add_merge(CLI::App* lora) {
  auto* cmd = lora->add_subcommand(
      "merge", "Merge adapters into the base: a temper checkpoint, or with -t a GGUF ready for llama.cpp/Ollama");
  auto o = std::make_shared<LoraMergeOptions>();
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->add_option("base_and_adapters", *args, "BASE (HF folder, .h5 or GGUF) then ADAPTER[:SCALE] ...")->required();
  cmd->add_option("-o,--output", o->output, "Output: .h5 checkpoint, or .gguf with -t")->required();
  cmd->add_option("-t,--type", o->gguf_type, "Write a GGUF of this file type (F16, Q8_0, Q4_K_M, ...) via quantize");
  cmd->add_flag("--modelfile", o->modelfile, "With -t: also write an Ollama Modelfile beside the GGUF");
  cmd->add_flag("--force", o->overwrite, "Overwrite an existing output");
  cmd->callback([o, args] {
    if (args->size() < 2) throw CLI::ValidationError("merge", "give BASE and at least one ADAPTER");
    if (o->modelfile && o->gguf_type.empty()) throw CLI::ValidationError("--modelfile", "needs -t TYPE");
    o->base = args->front();
    o->adapters.assign(args->begin() + 1, args->end());
    merge_lora(*o);
  });
}

}  // namespace

void add_lora_command(CLI::App& app) {
  auto* lora = app.add_subcommand("lora", "LoRA adapters: export (GGUF, PEFT), import (PEFT), merge into the base");
  lora->require_subcommand(1);
  add_export(lora);
  add_import(lora);
  add_merge(lora);
}

}  // namespace temper
