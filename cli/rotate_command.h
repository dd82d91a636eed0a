// `rekey rotate`: re-encrypt target columns under the new key, resumably;
// `rekey rollback --run N`: take run N's values back to its old key.
#pragma once

namespace CLI {
class App;
}

namespace rekey {

void add_rotate_command(CLI::App& root, int& exit_code);
void add_rollback_command(CLI::App& root, int& exit_code);

}  // namespace rekey
