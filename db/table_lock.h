// One runner per table: session-level advisory locks held on a dedicated
// connection for as long as this object lives. A table's lock is keyed by its
// OID, so no two tables share one; this file is the one place that knows the key.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey::db {

enum class LockShare {
  kAlone,  // nobody else may hold the lock now
  kJoin,   // other workers of the same run may (rotate --join)
};

class TableLocks {
 public:
  explicit TableLocks(const std::string& conninfo);
  ~TableLocks();

  // Takes the lock for `shape`'s table, shared with the other workers of the
  // same run. With LockShare::kAlone, only when no other session holds it (a
  // run nobody else works on; it is held shared afterwards, so that workers
  // can join). Returns nullopt on success, or a description of a holder (pid,
  // host, start time) when another session has it.
  std::optional<std::string> try_lock(const TableShape& shape, LockShare share);
  // Takes this worker's liveness lock, `token` (random, positive): held as
  // long as the table locks, taken again with them after a reconnect, so
  // that a unit whose owner's token nobody holds is free at once.
  void hold_worker_lock(std::int32_t token);

  // Serializes opening runs (open_run, planning their units) among the
  // workers of state schema `schema`: waits for the lock, held on this
  // object's session until unlock_run_opening() (or until the session ends).
  void lock_run_opening(const std::string& schema);
  void unlock_run_opening(const std::string& schema);

  // Confirms the locks taken so far are still held. If the lock connection
  // was lost (terminated backend, server restart), reconnects and takes them
  // again; returns false if another session took one meanwhile. Throws
  // pqxx errors while the server cannot be reached (retry those).
  bool still_held();

 private:
  std::string conninfo_;
  std::vector<TableShape> held_;
  std::optional<std::int32_t> worker_token_;
  std::unique_ptr<pqxx::connection> conn_;
};

// The names among `tables` (display names, "schema.table") whose runner lock
// some session holds now, in the order given. Reads in a transaction of its own on `conn`.
std::vector<std::string> locked_tables(pqxx::connection& conn, const std::vector<std::string>& tables);

// SQL true when some session of this database holds the liveness lock of the
// token that SQL expression `token` gives (hold_worker_lock).
std::string worker_alive_sql(const std::string& token);

}  // namespace rekey::db
