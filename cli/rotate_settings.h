// `rekey rotate` as run_rotate takes it: every option already parsed and
// typed (rotate_command.cpp turns the command line into it, durations
// included).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cli/db_options.h"
#include "cli/key_source.h"
#include "cli/lanes.h"
#include "db/pg_table_writer.h"
#include "db/table_lock.h"
#include "migrate/pace.h"
#include "migrate/rotation_engine.h"
#include "migrate/throttle.h"

namespace rekey {

// Who works on the run, and how: --workers, --join, --worker-name, --lease, --no-wait.
struct WorkerSettings {
  std::size_t lanes = 0;                        // writer lanes of this process; 0: automatic
  db::LockShare share = db::LockShare::kAlone;  // kJoin: join the run in progress (--join)
  std::string name;                             // default host:pid
  std::chrono::milliseconds lease{30000};
  std::size_t chunk_rows = 100000;  // about this many rows per work unit
  WhenNothingLeft when_nothing_left = WhenNothingLeft::kWaitForRun;
};

struct RotateSettings {
  DbOption db;
  std::vector<std::string> columns;
  bool discover = false;
  std::vector<std::string> exclude;
  KeyOptions keys;
  bool dry_run = false;
  bool restart = false;           // a new run, not the last one over these columns resumed
  bool disable_triggers = false;  // writes skip triggers and rules (db::Triggers::kSkip)
  std::optional<std::chrono::milliseconds> max_duration;
  std::string report;
  std::string metrics_file;
  std::string audit_log;
  EngineSettings engine;            // batch size and bytes, threads, --max-failures, --retry-for
  ThrottleSettings throttle;        // --max-rate, --pause-file, --max-replica-lag, --batch-time
  PaceMode pace = PaceMode::kAuto;  // --pace
  db::WriterSettings writer;        // --state-schema, --lock-timeout, --statement-timeout
  WorkerSettings workers;
  // `rekey rollback --run N`: N's scope (not columns, discover, exclude) and
  // N's keys swapped (KeyOrder::kRollback); the run is linked to N.
  std::optional<std::int64_t> rollback_of;
};

// Runs a rotation (or a rollback) and returns its exit code (see common/errors.h). Throws
// UsageError for bad keys or targets; other errors propagate.
int run_rotate(const RotateSettings& settings);

}  // namespace rekey
