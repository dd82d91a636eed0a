// A snapshot of the database exported for other sessions to share
// (pg_export_snapshot), so that a census of many relations sees them all at
// one instant: a row moving from one relation to another while they are read
// is seen exactly once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "db/pqxx_fwd.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace rekey::db {

class ExportedSnapshot {
 public:
  // Opens a connection holding a REPEATABLE READ, READ ONLY transaction for
  // the lifetime of this object. First, for at most `wait_for_older`, waits
  // until every transaction in progress at the call has ended (as CREATE
  // INDEX CONCURRENTLY does): one that began before the snapshot and commits
  // after it could hold values the snapshot cannot see. Throws on database
  // errors.
  ExportedSnapshot(const std::string& conninfo, std::chrono::milliseconds wait_for_older);
  ~ExportedSnapshot();

  // For SET TRANSACTION SNAPSHOT in another session's REPEATABLE READ transaction.
  const std::string& id() const { return id_; }
  // Transactions begun before the snapshot and still not ended after the
  // wait (prepared transactions among them): "pid N" or "prepared 'gid'".
  const std::vector<std::string>& older_still_open() const { return older_still_open_; }

 private:
  std::unique_ptr<pqxx::connection> conn_;  // declared before tx_: outlives it
  std::vector<std::string> older_still_open_;
  std::unique_ptr<pqxx::transaction_base> tx_;
  std::string id_;
};

}  // namespace rekey::db
