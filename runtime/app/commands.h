// Subcommands implemented in runtime/app (the stages register their own through their headers).
#pragma once

namespace CLI {
class App;
}

namespace temper {
void add_inspect_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
}  // namespace temper
