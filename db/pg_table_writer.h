// TableWriter over PostgreSQL: one UPDATE per batch with compare-and-swap on
// the values read, and the batch's state (checkpoint, counts, failures,
// pending rows) in the same short transaction, with bounded lock waits.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <pqxx/types>
#include <string>

#include "db/connection.h"
#include "db/state_schema_name.h"
#include "db/work_units.h"
#include "migrate/table_port.h"

namespace rekey::db {

// Whether rekey's writes fire the triggers and rules on the tables they write.
enum class Triggers {
  kFire,  // as any UPDATE does: the application's UPDATE triggers run for every row rewritten
  // session_replication_role = replica in each write transaction: ordinary
  // triggers and rules do not fire, foreign-key enforcement triggers included.
  // Needs a superuser (or, from PostgreSQL 15, SET on that parameter).
  kSkip,
};

// True when the role of `conninfo` may set session_replication_role (what
// Triggers::kSkip does); writes nothing. Throws on connection errors.
bool can_skip_triggers(const std::string& conninfo);

struct WriterSettings {
  std::string state_schema = kDefaultStateSchema;
  std::int64_t run_id = 0;
  std::chrono::milliseconds lock_timeout{1000};
  std::chrono::milliseconds statement_timeout{0};  // 0: none
  Triggers triggers = Triggers::kFire;
};

// The work unit a writer writes for, claimed by `owner`: each batch is fenced
// by it (db::fence_unit) and records its checkpoint, counts and rows seen on
// the unit's row, extending the lease.
struct UnitLease {
  WorkUnit unit;
  std::string owner;
  std::chrono::milliseconds lease{30000};
};

class PgTableWriter final : public TableWriter {
 public:
  // `totals` are the counts so far (one per column) of the work unit of
  // `lease`, which every batch records them on. Owns its connection; use from
  // one thread at a time. A write whose lease passed to another worker throws
  // PortError (kLeaseLost) and writes nothing.
  PgTableWriter(std::string conninfo, TableShape shape, WriterSettings settings, std::vector<ColumnCounts> totals,
                UnitLease lease);
  ~PgTableWriter() override;

  std::vector<std::size_t> write(const BatchWrite& batch) override;
  std::vector<KeyValues> pending() override;

 private:
  std::vector<std::size_t> write_once(pqxx::connection& conn, const BatchWrite& batch);
  // What one transaction of write_once() writes, a state table each; `tx` is
  // the batch's transaction.
  void set_write_limits(pqxx::transaction_base& tx) const;
  void settle_pending(pqxx::transaction_base& tx, const BatchWrite& batch) const;
  std::vector<std::size_t> update_rows(pqxx::transaction_base& tx, const BatchWrite& batch) const;
  void add_pending(pqxx::transaction_base& tx, const BatchWrite& batch, const std::vector<std::size_t>& lost) const;
  void record_failures(pqxx::transaction_base& tx, const BatchWrite& batch) const;
  void record_progress(pqxx::transaction_base& tx, const BatchWrite& batch,
                       const std::vector<ColumnCounts>& totals) const;
  std::string counts_json(const std::vector<ColumnCounts>& totals) const;

  TableShape shape_;
  WriterSettings settings_;
  std::vector<ColumnCounts> totals_;
  UnitLease lease_;
  std::string update_sql_;
  std::string update_skip_locked_sql_;
  Session session_;
};

}  // namespace rekey::db
