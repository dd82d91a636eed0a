// `rekey discover`: find the columns that hold Fernet tokens by sampling
// every text and bytea column; optionally write a `rekey rotate` config.
#pragma once

#include <string>
#include <vector>

#include "cli/discovery.h"

namespace CLI {
class App;
}

namespace rekey {

void add_discover_command(CLI::App& root, int& exit_code);

// The text of a CLI11 config file for `rekey rotate --config`: a `column`
// array of every rotatable column (identifiers quoted as SQL requires,
// inside TOML strings), `db` when given and holding no password, and
// `state-schema` when not the default (see migrate/config_file.h for how it
// is read). Columns rotate cannot handle are listed as comments.
std::string rotate_config_text(const std::vector<DiscoveredColumn>& columns, const std::string& db,
                               const std::string& state_schema);

}  // namespace rekey
