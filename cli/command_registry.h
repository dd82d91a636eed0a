// The list of subcommands, in the order `rekey --help` shows them.
#pragma once

namespace CLI {
class App;
}

namespace rekey {

void register_commands(CLI::App& root, int& exit_code);

}  // namespace rekey
