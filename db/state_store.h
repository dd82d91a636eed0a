// rekey's state schema: runs, per-table progress, failures, pending rows.
// Holds no key and no plaintext. Owns one connection; use from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "db/connection.h"
#include "db/run_status.h"
#include "migrate/table_port.h"

namespace rekey::db {

// What a run was asked to rotate (--column, --discover, --exclude): what a
// rollback resolves again.
struct RunScope {
  std::vector<std::string> columns;
  bool discover = false;
  std::vector<std::string> exclude;
};

struct RunRecord {
  std::int64_t id = 0;
  std::string targets;
  std::string new_key_fingerprint;
  std::string old_key_fingerprints;
  RunStatus status = RunStatus::kRunning;
  std::string command;
  std::string runner;
  std::string started_at;
  std::string updated_at;
  std::string finished_at;
  std::optional<int> exit_code;
  std::optional<std::int64_t> superseded_by;  // the run that replaced it (rotate --restart)
  std::optional<std::int64_t> rollback_of;    // the run it takes back (rekey rollback)
  std::optional<RunScope> scope;              // absent for a run an older rekey made
  // The first old key's fingerprint when the run began (old_key_fingerprints
  // is the last invocation's); for a run an older rekey made, the first of
  // old_key_fingerprints.
  std::string first_old_key;
};

// A new run's row: what it rotates, with which keys, and how to resume it.
struct NewRun {
  std::string targets;  // targets_key of its resolved tables
  std::string new_fp;
  std::string old_fps;  // comma-separated, in order
  std::string command;  // the command line that resumes it
  std::string runner;
  RunScope scope;
  std::optional<std::int64_t> rollback_of;
};

struct TableProgress {
  std::string table_name;
  std::optional<KeyValues> last_key;
  bool done = false;
  std::int64_t rows_seen = 0;
  std::int64_t estimated_rows = 0;
  std::vector<std::pair<std::string, ColumnCounts>> counts;  // by column name, its work units' included
};

struct FailureRecord {
  std::string table_name;
  std::string column_name;
  std::string primary_key;
  std::string reason;
};

class StateStore {
 public:
  StateStore(const std::string& conninfo, std::string schema);
  ~StateStore();

  // The tables of the state schema (sql/state_schema.sql).
  static const std::vector<std::string>& table_names();

  const std::string& schema() const { return schema_; }

  // Creates the schema and its tables if missing.
  void ensure_schema();
  // False when the schema does not exist (nothing has run yet).
  bool schema_exists();

  std::optional<RunRecord> latest_run(const std::string& targets);
  std::optional<RunRecord> run(std::int64_t id);
  std::vector<RunRecord> runs(std::size_t limit);
  // Runs not finished and not superseded, newest first.
  std::vector<RunRecord> unfinished_runs();

  std::int64_t create_run(const NewRun& run);
  // The runs after `id` (newest first), any status.
  std::vector<RunRecord> runs_after(std::int64_t id);
  void set_runner(std::int64_t run_id, const std::string& runner, const std::string& old_fps);
  // Marks `run_id` replaced by `by` (stopped, never resumed).
  void supersede(std::int64_t run_id, std::int64_t by);

  // Creates the table's progress row if missing, then returns it.
  TableProgress start_table(std::int64_t run_id, const TableShape& shape);
  std::vector<TableProgress> progress(std::int64_t run_id);
  std::vector<FailureRecord> failures(std::int64_t run_id, std::size_t limit);
  std::int64_t failure_count(std::int64_t run_id);
  // Pending rows of the run that were gone when read again.
  std::int64_t pending_not_found(std::int64_t run_id);

  // Added for `rekey status`. The names among `table_names` (display form, as
  // in table_progress) whose runner lock some session holds now
  // (db::locked_tables). Read-only.
  std::vector<std::string> locked_tables(const std::vector<std::string>& table_names);

 private:
  std::string schema_;
  Session session_;
};

}  // namespace rekey::db
