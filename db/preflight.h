// What rotate checks before it writes anything: that the server and session
// accept writes, and that rekey's role holds the privileges the rotation
// uses. Each opens a connection of its own for the call; read-only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey::db {

// Why nothing can be written through `conninfo`, or nullopt: the server is in
// recovery (a standby), or the session's transactions are read-only
// (default_transaction_read_only from the server, database, role or
// PGOPTIONS). Throws pqxx errors when the server cannot be reached.
std::optional<std::string> why_read_only(const std::string& conninfo);

// One line per privilege rekey's role lacks to rotate `shapes`: USAGE on each
// schema, SELECT on each key and target column, UPDATE on each target
// column. Empty when it has them all.
std::vector<std::string> missing_privileges(const std::string& conninfo, const std::vector<TableShape>& shapes);

}  // namespace rekey::db
