// Resolving operator-named targets against the catalog.
#pragma once

#include <memory>
#include <pqxx/connection>
#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey::db {

// Resolves `schema.table` and its `columns` into one TableShape per relation
// that stores the table's rows: the table itself and every inheritance
// descendant, or, for a partitioned table, its leaf partitions (the named
// relation first, then the others by schema and name). Each is read and
// written on its own (ONLY), with its own primary key (columns, types and
// operators), column kinds and estimated rows. Throws CatalogError naming the
// relation (and the column) when the table is unknown, no table (a view, a
// materialized view, a foreign table: the message says which, and where to
// rotate instead) or partitioned with no partition; a relation is a foreign table, has no primary key, or row-level
// security applies to this role on it (or on a table above it); a column is
// named twice, unknown, part of the key, generated, or of a type that cannot
// hold a token.
std::vector<TableShape> resolve_table(pqxx::connection& conn, const std::string& schema, const std::string& table,
                                      const std::vector<std::string>& columns);

// resolve_table() for many tables over one connection, which it owns. Use
// from one thread at a time.
class Catalog {
 public:
  explicit Catalog(const std::string& conninfo);
  ~Catalog();
  std::vector<TableShape> resolve_table(const std::string& schema, const std::string& table,
                                        const std::vector<std::string>& columns);

 private:
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace rekey::db
