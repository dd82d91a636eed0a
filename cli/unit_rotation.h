// The parts of a rotation by work units that run around the lanes: who this
// worker is, the plan of the run's units, the message for a table another
// run works on, and the run's totals read back from its units.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/lanes.h"
#include "cli/pace_keeper.h"
#include "cli/rotate_settings.h"
#include "cli/run_report.h"
#include "db/state_store.h"
#include "db/work_units.h"
#include "migrate/census_engine.h"

namespace rekey {

// This worker: --worker-name (default host:pid), a random liveness token
// (TableLocks::hold_worker_lock), --lease.
db::Claimant make_claimant(const WorkerSettings& workers);

// --workers, or the machine's cores (at most 8); --no-wait; --retry-for.
LaneSettings lane_settings(const WorkerSettings& workers, const RetryPolicy& retry);

// What each of `lanes` lanes runs with: a share of the process's
// --batch-bytes and --threads (more lanes, not more memory or crypto threads).
EngineSettings lane_engine(const EngineSettings& process, std::size_t lanes);

// Plans the run's units when nobody has: each table's chunks, after its
// checkpoint. A run resumed alone (not joined) does its tables' finishes and
// its own unit again. Call while holding the run-opening lock.
void plan_units(db::StateStore& store, const std::string& conninfo, std::int64_t run_id, const db::Claimant& claimant,
                const std::vector<TableShape>& shapes, const WorkerSettings& workers);

// Why a table's lock was refused: the holder, the runs in progress and their
// workers, and --join.
std::string busy_table_message(db::StateStore& store, const std::string& conninfo, const std::string& schema,
                               const TableShape& shape, const std::string& holder);

struct RunSize {
  std::int64_t rows_seen = 0;
  std::int64_t estimated_rows = 0;
};
// The rows the run's tables have seen so far, and their estimated rows.
RunSize run_size(db::StateStore& store, std::int64_t run_id);

// The run's totals per table (its units' included) into report.tables, and
// whether every table's finish completed.
void load_tables(db::StateStore& store, db::WorkUnits& units, std::int64_t run_id,
                 const std::vector<TableShape>& shapes, RunReport& report, bool& all_completed);

// --pace auto: a keeper pacing `throttle` from a HealthProbe of this worker on
// the run's targets, its baseline taken now (before the lanes start); null for
// --pace max.
std::unique_ptr<PaceKeeper> start_pace(const RotateSettings& s, const std::string& conninfo, std::int64_t run_id,
                                       const std::string& worker, const std::vector<TableShape>& shapes,
                                       Throttle& throttle);

// The pacing so far into `report`: time paused (by cause) and throttled, and
// the pace (none for --pace max).
void note_pacing(RunReport& report, const Throttle& throttle, const PaceKeeper* pace);

// The final census of a run with the process's --threads and --batch-bytes.
CensusSettings census_settings(const EngineSettings& engine);

}  // namespace rekey
