// The work units of a run (the state schema's chunks table): what writer
// lanes, in this process and on other hosts, claim, work on under a lease,
// and complete. PostgreSQL is the coordinator: a claim is one UPDATE of a row
// picked FOR UPDATE SKIP LOCKED, a lease expires on the database's clock, and
// every write of a unit is fenced by its owner and epoch.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/types>
#include <string>
#include <utility>
#include <vector>

#include "db/connection.h"
#include "db/run_status.h"
#include "migrate/table_port.h"

namespace rekey::db {

enum class UnitKind {
  kRange,   // a key range of one table: its main pass
  kFinish,  // one table, once its ranges are done: pending rows and the final sweep
  kRun,     // the run, once every table is finished: what rotate does not cover, the exit code
};

struct WorkUnit {
  std::string table_name;  // as displayed ("schema.table"); empty for kRun
  int chunk = 0;
  UnitKind kind = UnitKind::kRange;
  KeyRange range;  // kRange: its keys, `after` moved to the checkpoint when there is one
  std::int64_t epoch = 0;
  std::int64_t rows_seen = 0;
  std::vector<std::pair<std::string, ColumnCounts>> counts;  // this unit's so far, by column
};

// Who claims units, and for how long: the worker's name (--worker-name), the
// token of its liveness lock (TableLocks::hold_worker_lock: units of a worker
// whose lock nobody holds any more are free at once), and the lease.
struct Claimant {
  std::string name;
  std::int32_t liveness_token = 0;
  std::chrono::milliseconds lease{30000};
};

// One table's part of a plan: its ranges cut at `bounds` (upper bounds,
// increasing), the first after `after` (a checkpoint of an older rekey, or
// nullopt); with `done`, only its finish (its rows were all done before).
struct TablePlan {
  std::string table_name;
  std::optional<KeyValues> after;
  std::vector<KeyValues> bounds;
  bool done = false;
};

// How far a run is: its units by status, and the workers holding units now.
struct UnitTally {
  std::int64_t todo = 0;
  std::int64_t running = 0;
  std::int64_t done = 0;
  bool superseded = false;  // rotate --restart put another run in its place: nothing of it is claimed any more
  std::int64_t total() const { return todo + running + done; }
};

struct WorkerLease {
  std::string worker;
  std::string table_name;
  int chunk = 0;
  UnitKind kind = UnitKind::kRange;
  std::int64_t rows_seen = 0;
  double seconds_held = 0;       // since its claim
  double lease_age_seconds = 0;  // since its claim, last renewal or last write
};

// Thread safety: one object per thread (it owns one connection).
class WorkUnits {
 public:
  WorkUnits(const std::string& conninfo, std::string schema, std::int64_t run_id, Claimant claimant);
  ~WorkUnits();

  // True when the state schema has the table of work units (an older
  // rekey's has not).
  bool table_exists();
  // True when the run's units exist.
  bool planned();
  // Records the run's units: each table's ranges and finish, then the run's,
  // in one transaction. Does nothing when another worker planned it first.
  void plan(const std::vector<TablePlan>& tables);
  // Every finish and the run's unit to do again (a run resumed by a new
  // invocation sweeps its tables again: values copied behind a checkpoint
  // since then are rotated too). Leaves the ranges as they are.
  void reopen_finishes();

  // The next unit this worker may work on, now claimed by it, or nullopt:
  // ranges first, a table's finish once its ranges are done, the run's last.
  std::optional<WorkUnit> claim();
  // Marks `unit` done with `outcome`; false when its lease was lost (nothing
  // changed). In the same transaction, a finish marks its table done
  // (table_progress), and the run's unit ends the run: runs.status and
  // exit_code from outcome's "status" and "exit_code".
  bool complete(const WorkUnit& unit, const nlohmann::json& outcome);
  // Ends the run as `status` with `exit_code`, unless its own unit is done
  // (the run was ended there) or some worker still holds a unit under a live
  // lease (the run goes on); true when it did.
  bool end_run(RunStatus status, int exit_code);
  // Gives `unit` back (to do, its checkpoint kept), when this worker stops.
  void release(const WorkUnit& unit);
  // Extends the leases of `held`, and the run's sign of life (runs.updated_at);
  // returns those that were lost.
  std::vector<WorkUnit> renew(const std::vector<WorkUnit>& held);

  UnitTally tally();
  // The units held now under a live lease, by any worker.
  std::vector<WorkerLease> leases();
  // The outcomes of the done finish units, by table name.
  std::vector<std::pair<std::string, nlohmann::json>> finish_outcomes();

 private:
  std::string table() const;
  std::string schema_;
  std::int64_t run_id_;
  Claimant claimant_;
  Session session_;
};

std::string kind_name(UnitKind kind);  // "range", "finish", "run"

// The SQL that fences a write of `unit` (in `tx`, the write's transaction):
// locks its row while this worker still holds it, or throws PortError
// (kLeaseLost). For PgTableWriter.
void fence_unit(pqxx::transaction_base& tx, const std::string& schema, std::int64_t run_id, const WorkUnit& unit,
                const std::string& owner);

}  // namespace rekey::db
