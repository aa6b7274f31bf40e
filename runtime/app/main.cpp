// The `temper` executable: one tool, one subcommand per stage. The only translation unit that
// includes every stage's public header.
//
// Exit codes (README "Exit codes"): 0 success, 1 an error in the input or the run (including
// internal errors), 2 a usage error (unknown option, missing argument, bad value).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "app/commands.h"
#include "convert.h"
#include "quantize.h"
#include "verify.h"
#include "train/train.h"
#include "adapters/lora.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/threads.h"

int main(int argc, char** argv) {
  temper::use_passive_openmp_wait(argv);  // first: may re-exec (see threads.h)
  temper::install_interrupt_handler();  // Ctrl-C says so, removes unfinished outputs, exits 130
  CLI::App app{"temper: from a Hugging Face checkpoint to a trusted local deployment"};
  app.set_version_flag("--version", std::string("temper ") + TEMPER_VERSION);
  app.require_subcommand(1);
  // Global options are accepted anywhere: `temper eval M --text T -q` as well as `temper -q eval
  // ...`. An option the subcommand does not know falls through to these (subcommands inherit
  // the setting); a subcommand's own option of the same name wins (quantize's -t is --type).
  app.fallthrough();
  int threads = 0;
  bool quiet = false, verbose = false, sync = false;
  app.add_option("-t,--threads", threads, "Threads (default: all cores, or TEMPER_THREADS)");
  app.add_flag("-q,--quiet", quiet, "Only errors");
  app.add_flag("-v,--verbose", verbose, "More detail");
  app.add_flag("--sync", sync,
               "fsync each output before renaming it into place, so it also survives a power cut "
               "(waits for the disk)");
  app.parse_complete_callback([&] {
    temper::set_log_level(quiet ? temper::LogLevel::kQuiet
                                : verbose ? temper::LogLevel::kVerbose : temper::LogLevel::kNormal);
    temper::set_num_threads(threads);
    temper::set_durable_outputs(sync);
  });

  temper::add_convert_command(app);
  temper::add_quantize_command(app);
  temper::add_eval_command(app);
  temper::add_compare_command(app);
  temper::add_generate_command(app);
  temper::add_imatrix_command(app);
  temper::train::add_train_command(app);
  temper::add_lora_command(app);
  temper::add_inspect_command(app);
  temper::add_tokenize_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 numbers its errors 100+ (106 extras, 109 validation, ...); a usage error is 2 as in
    // POSIX utilities. --help and --version are ParseErrors too, with code 0.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const temper::Error& e) {
    std::fprintf(stderr, "temper: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "temper: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "temper: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
