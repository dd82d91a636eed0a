// One runner per table: session-level advisory locks held on a dedicated
// connection for as long as this object lives.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "db/pqxx_fwd.h"
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

}  // namespace rekey::db
