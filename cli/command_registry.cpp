#include "cli/command_registry.h"

#include "cli/config_file.h"
#include "cli/discover_command.h"
#include "cli/key_commands.h"
#include "cli/rotate_command.h"
#include "cli/status_command.h"
#include "cli/verify_command.h"

namespace rekey {

void register_commands(CLI::App& root, int& exit_code) {
  add_rotate_command(root, exit_code);
  add_rollback_command(root, exit_code);
  add_discover_command(root, exit_code);
  add_verify_command(root, exit_code);
  add_status_command(root, exit_code);
  add_keygen_command(root, exit_code);
  add_check_key_command(root, exit_code);
  enable_subcommand_configs(root);  // e.g. `rekey rotate --config FILE` (CLI11 2.1.2 ignores it otherwise)
}

}  // namespace rekey
