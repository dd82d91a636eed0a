// One runner per table: session-level advisory locks held on a dedicated
// connection for as long as this object lives. A table's lock is keyed by its
// OID, so no two tables share one; this file is the one place that knows the key.
#pragma once

#include <memory>
#include <optional>
#include <pqxx/connection>
#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey::db {

class TableLocks {
 public:
  explicit TableLocks(const std::string& conninfo);
  ~TableLocks();

  // Takes the lock for `shape`'s table. Returns nullopt on success, or a
  // description of the holder (pid, host, start time) when another session has it.
  std::optional<std::string> try_lock(const TableShape& shape);

  // Confirms the locks taken so far are still held. If the lock connection
  // was lost (terminated backend, server restart), reconnects and takes them
  // again; returns false if another session took one meanwhile. Throws
  // pqxx errors while the server cannot be reached (retry those).
  bool still_held();

 private:
  std::string conninfo_;
  std::vector<TableShape> held_;
  std::unique_ptr<pqxx::connection> conn_;
};

// The names among `tables` (display names, "schema.table") whose runner lock
// some session holds now, in the order given. Reads in a transaction of its own on `conn`.
std::vector<std::string> locked_tables(pqxx::connection& conn, const std::vector<std::string>& tables);

}  // namespace rekey::db
