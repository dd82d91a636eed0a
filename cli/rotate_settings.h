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
#include "db/pg_table_writer.h"
#include "migrate/rotation_engine.h"
#include "migrate/throttle.h"

namespace rekey {

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
  EngineSettings engine;      // batch size and bytes, threads, --max-failures, --retry-for
  ThrottleSettings throttle;  // --max-rate, --pause-file, --max-replica-lag, --batch-time
  db::WriterSettings writer;  // --state-schema, --lock-timeout, --statement-timeout
};

// Runs a rotation and returns its exit code (see common/errors.h). Throws
// UsageError for bad keys or targets; other errors propagate.
int run_rotate(const RotateSettings& settings);

}  // namespace rekey
