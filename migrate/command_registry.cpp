#include "migrate/command_registry.h"

#include "migrate/config_file.h"
#include "migrate/discover_command.h"
#include "migrate/key_commands.h"
#include "migrate/rotate_command.h"
#include "migrate/status_command.h"
#include "migrate/verify_command.h"

namespace rekey {

void register_commands(CLI::App& root, int& exit_code) {
  add_rotate_command(root, exit_code);
  add_discover_command(root, exit_code);
  add_verify_command(root, exit_code);
  add_status_command(root, exit_code);
  add_keygen_command(root, exit_code);
  add_check_key_command(root, exit_code);
  enable_subcommand_configs(root);  // e.g. `rekey rotate --config FILE` (CLI11 2.1.2 ignores it otherwise)
}

}  // namespace rekey
