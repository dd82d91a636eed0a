// `rekey rotate`: re-encrypt target columns under the new key, resumably.
#pragma once

namespace CLI {
class App;
}

namespace rekey {

void add_rotate_command(CLI::App& root, int& exit_code);

}  // namespace rekey
