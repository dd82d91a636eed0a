// The command-line front: parses arguments, hardens the process, dispatches
// to a subcommand and maps errors to exit codes. Never throws.
#pragma once

namespace rekey {

int run_cli(int argc, char** argv);

}  // namespace rekey
