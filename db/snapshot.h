// A snapshot of the database exported for other sessions to share
// (pg_export_snapshot), so that a census of many relations sees them all at
// one instant: a row moving from one relation to another while they are read
// is seen exactly once.
#pragma once

#include <memory>
#include <string>

#include "db/pqxx_fwd.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace rekey::db {

class ExportedSnapshot {
 public:
  // Opens a connection holding a REPEATABLE READ, READ ONLY transaction for
  // the lifetime of this object. Throws on database errors.
  explicit ExportedSnapshot(const std::string& conninfo);
  ~ExportedSnapshot();

  // For SET TRANSACTION SNAPSHOT in another session's REPEATABLE READ transaction.
  const std::string& id() const { return id_; }

 private:
  std::unique_ptr<pqxx::connection> conn_;  // declared before tx_: outlives it
  std::unique_ptr<pqxx::transaction_base> tx_;
  std::string id_;
};

}  // namespace rekey::db
