// The work of each kind of unit of a rotation (the UnitWork the lanes run):
// a range's main pass, a table's finish (its pending rows and final sweep),
// and the run's own unit (given by the run).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/lanes.h"
#include "cli/progress.h"
#include "cli/run_report.h"
#include "crypto/keyring.h"
#include "db/pg_table_writer.h"
#include "migrate/rotation_engine.h"

namespace rekey {

// What the lanes of one process share to rotate units.
struct RotationUnitsSetup {
  std::string conninfo;
  const crypto::Keyring* keyring = nullptr;
  std::vector<TableShape> shapes;  // every table of the run
  EngineSettings engine;           // shared by the lanes: its throttle and still_locked are thread-safe
  db::WriterSettings writer;       // run_id set
  db::Claimant claimant;
  std::int64_t failures_before = 0;  // failures the run recorded before this process (--max-failures)
  // The run's own unit, once every table is finished: its outcome
  // ({"status", "exit_code"}), or nullopt when stopped first.
  std::function<std::optional<nlohmann::json>()> finish_run;
  // After each unit this process worked on: what it did so far, by table (for
  // --metrics-file). Called from the lanes, one call at a time.
  std::function<void(const std::vector<TableReport>& so_far)> on_unit_done;
};

// Thread-safe (UnitWork's contract): what the lanes share is guarded by mutex_.
class RotationUnits final : public UnitWork {
 public:
  RotationUnits(RotationUnitsSetup setup, StopControl& stop, ProgressReporter& progress);

  std::optional<nlohmann::json> work(const db::WorkUnit& unit, std::size_t lane) override;
  void waiting(const std::vector<db::WorkerLease>& others) override;

  // The retries and batches of this process's lanes into the report's tables.
  void add_to(RunReport& report) const;

  // Failures this process found, by reason.
  std::map<std::string, std::int64_t> failure_reasons() const;
  // Rows this process's lanes read.
  std::int64_t rows_seen() const;

 private:
  std::optional<nlohmann::json> rotate(const db::WorkUnit& unit, std::size_t lane);
  const TableShape& shape_of(const std::string& table_name) const;
  void account(const TableShape& shape, const TableOutcome& outcome, std::size_t lane);
  void show_progress(std::int64_t unit_rows, std::size_t lane);

  const RotationUnitsSetup setup_;
  StopControl& stop_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;  // guards what follows
  ProgressReporter& progress_;
  std::int64_t rows_done_ = 0;                        // in units this process finished or gave back
  std::int64_t failures_ = 0;                         // found by this process's lanes
  std::map<std::size_t, std::int64_t> rows_in_unit_;  // by lane: in the unit it works on now
  std::map<std::string, std::int64_t> failure_reasons_;
  std::map<std::string, TableReport> tables_;  // what this process did to each table
};

}  // namespace rekey
