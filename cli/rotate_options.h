// The options of `rekey rotate` and running it. The CLI front
// (rotate_command.cpp) fills RotateOptions; run_rotate does the work.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "cli/db_options.h"
#include "cli/key_source.h"
#include "db/state_schema_name.h"

namespace rekey {

struct RotateOptions {
  DbOption db;
  std::vector<std::string> columns;
  bool discover = false;
  std::vector<std::string> exclude;
  KeyOptions keys;
  bool dry_run = false;
  bool disable_triggers = false;  // writes skip triggers and rules (db::Triggers::kSkip)
  std::size_t batch_size = 2000;
  std::size_t batch_bytes = std::size_t{32} << 20;  // EngineSettings::batch_bytes
  std::size_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::string max_duration;
  std::int64_t max_failures = 0;
  std::string report;
  bool restart = false;
  std::string state_schema = db::kDefaultStateSchema;
  std::string lock_timeout = "1s";
  std::string statement_timeout = "0";
  std::string retry_for = "5m";
  double max_rate = 0;
  std::string max_replica_lag;
  std::string pause_file;
  std::string batch_time = "250ms";
  bool batch_size_given = false;
  std::string metrics_file;
  std::string audit_log;
};

// Runs a rotation and returns its exit code (see migrate/errors.h). Throws
// UsageError for bad options, keys or targets; other errors propagate.
int run_rotate(const RotateOptions& options);

}  // namespace rekey
