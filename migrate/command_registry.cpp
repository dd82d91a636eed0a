#include "migrate/command_registry.h"

#include "migrate/key_commands.h"
#include "migrate/rotate_command.h"

namespace rekey {

void register_commands(CLI::App& root, int& exit_code) {
  add_rotate_command(root, exit_code);
  add_keygen_command(root, exit_code);
  add_check_key_command(root, exit_code);
}

}  // namespace rekey
