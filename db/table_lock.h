// One runner per table: session-level advisory locks held on a dedicated
// connection for as long as this object lives.
#pragma once

#include <memory>
#include <optional>
#include <string>

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

 private:
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace rekey::db
