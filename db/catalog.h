// Resolving operator-named targets against the catalog.
#pragma once

#include <string>
#include <vector>

#include "db/pqxx_fwd.h"
#include "migrate/table_port.h"

namespace rekey::db {

// Resolves `schema.table` and its `columns` into a TableShape: primary key
// columns and types, column kinds, estimated rows. Throws CatalogError naming
// the table or column when the table is unknown, has no primary key, or a
// column is unknown, part of the key, or of a type that cannot hold a token.
TableShape resolve_table(pqxx::connection& conn, const std::string& schema, const std::string& table,
                         const std::vector<std::string>& columns);

}  // namespace rekey::db
