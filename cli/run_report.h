// The JSON report of a rotate run (--report FILE). Holds counts, key
// fingerprints and primary keys of failures; never a key or a value.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/exit_code.h"
#include "cli/key_source.h"
#include "db/run_status.h"
#include "db/state_store.h"
#include "migrate/pace.h"
#include "migrate/stop_control.h"
#include "migrate/table_port.h"

namespace rekey {

struct TableReport {
  std::string table;
  std::vector<std::string> columns;
  std::vector<ColumnCounts> counts;  // run totals, one per column
  std::int64_t rows_seen = 0;        // in this invocation
  std::int64_t estimated_rows = 0;   // the planner's estimate when resolved
  std::int64_t retries = 0;
  std::int64_t batches = 0;
  std::int64_t pending_not_found = 0;  // rows gone when read again after losing a compare-and-swap
  std::int64_t swept = 0;              // rows the final sweep found under an old key and rotated
  bool completed = false;
};

// A table's report before anything is counted.
TableReport table_report(const TableShape& shape);

// A column rotate found holding tokens but cannot rewrite, as the final
// census counted it.
struct UncoveredColumn {
  std::string column;        // schema.table.column, display form
  std::string why;           // why rotate cannot rewrite it
  std::int64_t values = 0;   // values holding a token
  std::int64_t not_new = 0;  // of those, not under the new key: the run exits 3
};

struct RunReport {
  std::int64_t run_id = 0;  // 0 for a dry run
  bool dry_run = false;
  std::optional<std::int64_t> rollback_of;  // the run a rollback takes back
  KeySources key_sources;                   // where the keys came from (labels, never keys)
  int exit_code = 0;
  db::RunStatus status = db::RunStatus::kRunning;
  std::string stop_reason;
  std::string error;  // a failed run's error, first line (error_summary): never a key or a value
  double duration_seconds = 0;
  double seconds_paused = 0;                        // pause file present or replicas lagging
  double seconds_throttled = 0;                     // held back by --max-rate or the pace
  std::map<std::string, double> seconds_paused_by;  // by cause: "pause file", "replica lag", "pace"
  PaceReport pace;                                  // --pace, and under auto the pace over time
  std::string new_key_fingerprint;
  std::vector<std::string> old_key_fingerprints;
  std::vector<TableReport> tables;
  std::vector<UncoveredColumn> uncovered;
  nlohmann::json unchecked = nlohmann::json::array();  // [{object, reason}]: could not be read
  std::vector<std::string> excluded;
  nlohmann::json failures = nlohmann::json::array();  // [{table, column, primary_key, reason}]
};

nlohmann::json to_json(const RunReport& report);

// Where the keys came from, as the report and the audit log show it.
nlohmann::json key_sources_json(const KeySources& sources);

// The audit log's run_start event of `report` for `command` (rotate or
// rollback) over `targets` (a targets_key): the run, its keys by fingerprint
// and source, and the command line.
nlohmann::json run_start_event(const RunReport& report, const std::string& command, const std::string& targets);

// One entry of RunReport::failures: a value that could not be rotated, by
// its primary key as text (bytes that are not UTF-8 escaped, log::json_text).
nlohmann::json failure_json(const std::string& table, const std::string& column, const std::string& primary_key,
                            const std::string& reason);

// Adds the first `limit` failures `store` recorded for report.run_id to the
// report; a failure to list them is only a warning (the run's outcome stands).
void add_recorded_failures(RunReport& report, db::StateStore& store, std::size_t limit = 1000);

// What a rotate run ended with, for its exit code. `recorded_failures`: the
// failures the state holds for the run, wherever they were found (first read,
// pending rows, final sweep). Stopping at --max-failures is a finding, not a
// stop.
// {table: {column: counts}} of every table of `report`.
nlohmann::json counts_by_table(const RunReport& report);

RunOutcome rotate_outcome(const RunReport& report, StopReason stop, bool all_completed, std::int64_t recorded_failures);

// A human summary on stdout: per column counts, rate, and for a dry run what
// would change and the projected duration of the real run.
void print_rotate_summary(const RunReport& report, bool dry_run);

// Writes the report through an AtomicFile (mode 0600, never through a link).
// Throws std::runtime_error naming `path` on failure.
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace rekey
