// `rekey keygen` and `rekey check-key`.
#pragma once

namespace CLI {
class App;
}

namespace rekey {

// Each registers its subcommand on `root`; running it stores the exit code in
// `exit_code`. The objects they capture live as long as `root`.
void add_keygen_command(CLI::App& root, int& exit_code);
void add_check_key_command(CLI::App& root, int& exit_code);

}  // namespace rekey
