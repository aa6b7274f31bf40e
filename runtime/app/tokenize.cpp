// `temper tokenize MODEL (--text S | --file F)`: the token ids and pieces a model's tokenizer
// gives a text, exactly as eval/compare/generate see them (same tokenizer, same semantics: HF
// tokenizer.json for a folder or checkpoint, llama.cpp's for a GGUF). Weights are not loaded.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/terminal_text.h"
#include "model/open_model.h"
#include "model/tokenizer_assets.h"
#include "tokenizer/tokenizer.h"

namespace temper {
namespace {

struct TokenizeOptions {
  std::string model, text, file;
  bool ids_only = false, pieces_only = false, parse_special = false, no_bos = false, json = false;
};

// The tokenizer of a model folder, checkpoint or GGUF. A folder without config.json (tokenizer
// files only) is read as a tokenizer; the chosen semantics are eval_model's.
Tokenizer open_tokenizer(const std::string& path) {
  try {
    TEMPER_CHECK(file_exists(path), "no such file or folder");
    if (is_directory(path) && !file_exists(path + "/config.json"))
      return Tokenizer::from_assets(load_tokenizer_assets(path));
    const OpenedModel m = open_model(path);
    const TokenizerSource src = m.format == ModelFormat::kGguf ? TokenizerSource::kGguf : TokenizerSource::kAuto;
    return Tokenizer::from_assets(m.desc.tokenizer, src);
  } catch (const Error& e) {
    fail("cannot load the tokenizer of ", path, ": ", e.what());
  }
}

void run_tokenize(const TokenizeOptions& o) {
  const std::string text = o.file.empty() ? o.text : read_text_file(o.file);
  const Tokenizer tok = open_tokenizer(o.model);
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/!o.no_bos, o.parse_special);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(escape_for_terminal(tok.token_to_piece(id)));
  if (o.json) {
    const Json j = {{"model", o.model}, {"n_tokens", ids.size()}, {"ids", ids}, {"pieces", pieces}};
    std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return;
  }
  if (o.ids_only) {
    std::string line = "[";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
    std::printf("%s]\n", line.c_str());
  } else {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (o.pieces_only) std::printf("%s\n", pieces[i].c_str());
      else std::printf("%8d  '%s'\n", ids[i], pieces[i].c_str());
    }
  }
  std::fflush(stdout);
  info(ids.size(), " tokens");
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Show the token ids and pieces a model's tokenizer gives a text");
  auto o = std::make_shared<TokenizeOptions>();
  cmd->add_option("model", o->model, "Hugging Face folder (or one with tokenizer files only), .h5 or GGUF")->required();
  auto* text = cmd->add_option("--text", o->text, "Text to tokenize");
  auto* file = cmd->add_option("--file", o->file, "File whose bytes to tokenize")->check(CLI::ExistingFile);
  text->excludes(file);
  auto* ids = cmd->add_flag("--ids", o->ids_only, "Print only the ids, as [1, 2, 3]");
  auto* pieces = cmd->add_flag("--pieces", o->pieces_only, "Print only the pieces, one per line");
  ids->excludes(pieces);
  cmd->add_flag("--special", o->parse_special,
                "Read special-token text such as <|eot_id|> as that token (default: as plain text)");
  cmd->add_flag("--no-bos", o->no_bos, "Add no BOS (nor the EOS some tokenizers append) around the text");
  cmd->add_flag("--json", o->json, "Print {ids, pieces, n_tokens} as JSON (pieces escaped as on the terminal)");
  cmd->callback([o, text, file] {
    if (text->count() == 0 && file->count() == 0) throw CLI::RequiredError("--text or --file");
    run_tokenize(*o);
  });
}

}  // namespace temper
