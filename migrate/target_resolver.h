// Turning --column specs (or --discover) into resolved table shapes.
#pragma once

#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey {

// Resolves each named table and its columns against the catalog; with
// `discover`, adds every column discovery finds (outside `state_schema`).
// Throws UsageError naming the table or column that is unknown, has no
// primary key, or cannot hold a token, or when nothing is found.
std::vector<TableShape> resolve_targets(const std::string& conninfo, const std::vector<std::string>& columns,
                                        bool discover, const std::string& state_schema);

}  // namespace rekey
