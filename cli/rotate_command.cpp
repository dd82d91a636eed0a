#include "cli/rotate_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <thread>

#include "cli/cli_choices.h"
#include "cli/config_file.h"
#include "cli/db_options.h"
#include "cli/rotate_settings.h"
#include "common/duration.h"
#include "common/errors.h"

namespace rekey {
namespace {

// The durations of the command line as written, parsed once into
// RotateSettings (parse_durations).
struct DurationTexts {
  std::string max_duration;
  std::string lock_timeout = "1s";
  std::string statement_timeout = "0";
  std::string retry_for = "5m";
  std::string max_replica_lag;
  std::string batch_time = "250ms";
  std::string lease = "30s";
};

// Throws UsageError naming the first option that is not a duration.
void parse_durations(const DurationTexts& d, RotateSettings& s) {
  if (!d.max_replica_lag.empty()) s.throttle.max_replica_lag = parse_duration(d.max_replica_lag, "--max-replica-lag");
  s.engine.retry.retry_for = parse_duration(d.retry_for, "--retry-for");
  s.throttle.replica_lag_unknown_for = s.engine.retry.retry_for;
  s.throttle.batch_time = parse_duration(d.batch_time, "--batch-time");
  if (!d.max_duration.empty()) s.max_duration = parse_duration(d.max_duration, "--max-duration");
  s.writer.lock_timeout = parse_duration(d.lock_timeout, "--lock-timeout");
  s.writer.statement_timeout = parse_duration(d.statement_timeout, "--statement-timeout");
  s.workers.lease = parse_duration(d.lease, "--lease");
  if (s.workers.lease < std::chrono::seconds(1)) throw UsageError("--lease: at least 1s");
}

// Writer lanes here and on other hosts.
void add_worker_options(CLI::App& cmd, RotateSettings& s, DurationTexts& d) {
  cmd.add_option(
         "--workers", s.workers.lanes,
         "Writer lanes in this process, each with its own connections (default: the machine's cores, at most 8)")
      ->check(CLI::Range(1, 64));
  cmd.add_flag_callback(
      "--join", [&s] { s.workers.share = db::LockShare::kJoin; },
      "Join the run in progress over the same targets with the same new key (from any host), or start it");
  cmd.add_option("--worker-name", s.workers.name,
                 "This worker's name in the run's state and in status (default host:pid)");
  cmd.add_option("--chunk-rows", s.workers.chunk_rows,
                 "About this many rows per chunk a worker claims (the first worker's plan holds for the run)")
      ->check(CLI::Range(100, 100000000))
      ->capture_default_str();
  cmd.add_option("--lease", d.lease, "How long a claimed chunk stays this worker's without a sign of life")
      ->capture_default_str();
  cmd.add_flag_callback(
      "--no-wait", [&s] { s.workers.when_nothing_left = WhenNothingLeft::kLeave; },
      "Leave (exit 75) once nothing is left to claim, instead of waiting for the other workers to finish the run");
}

// What to rotate (rotate only: a rollback's is the run's it takes back).
void add_target_options(CLI::App& cmd, RotateSettings& s) {
  cmd.add_option("--column", s.columns, "[SCHEMA.]TABLE.COLUMN to rotate (repeatable; SQL identifier rules)");
  cmd.add_flag("--discover", s.discover,
               "Rotate every column holding a token anywhere in the database (every value is searched); columns "
               "it cannot rewrite are counted at the end and make it exit 3");
  cmd.add_option("--exclude", s.exclude,
                 "SCHEMA.TABLE[.COLUMN] to leave out of --discover (repeatable); the report lists it");
  cmd.add_flag("--restart", s.restart, "Start a new run instead of resuming the last one over these columns");
}

// The database, the keys, and what rotate writes besides the data.
void add_scope_options(CLI::App& cmd, RotateSettings& s) {
  add_db_option(cmd, s.db);
  add_key_options(cmd, s.keys);
  cmd.add_flag("--dry-run", s.dry_run, "Read, decrypt, re-encrypt and check in memory; write nothing at all");
  cmd.add_flag("--disable-triggers", s.disable_triggers,
               "rekey's writes fire no trigger or rule (session_replication_role = replica): the application's "
               "UPDATE triggers and foreign-key checks are skipped; superuser only");
}

// Batches, pacing and limits. Returns --batch-size (given or not).
CLI::Option* add_pacing_options(CLI::App& cmd, RotateSettings& s, DurationTexts& d) {
  CLI::Option* batch_size = cmd.add_option("--batch-size", s.engine.batch_size,
                                           "Rows per batch and transaction (fixed; default: steered by --batch-time)")
                                ->check(CLI::Range(1, 1000000));
  add_batch_bytes_option(cmd, s.engine.batch_bytes);
  cmd.add_option("--batch-time", d.batch_time, "Target time per batch when --batch-size is not given")
      ->capture_default_str();
  cmd.add_option("--pace", s.pace,
                 "auto: as fast as the database's health allows beside live traffic; max: as fast as possible "
                 "(a maintenance window)")
      ->transform(choices(std::map<std::string, PaceMode>{{"auto", PaceMode::kAuto}, {"max", PaceMode::kMax}}))
      ->capture_default_str();
  cmd.add_option("--max-rate", s.throttle.max_rate, "Rows per second at most, in both paces; 0: no cap")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-replica-lag", d.max_replica_lag, "Pause while a standby's replay lag exceeds this, e.g. 10s");
  cmd.add_option("--pause-file", s.throttle.pause_file, "Pause while this file exists");
  cmd.add_option("--threads", s.engine.threads, "Re-encryption threads of this process (its lanes share them)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd.add_option("--max-duration", d.max_duration, "Stop cleanly (exit 75) after this long, e.g. 90s, 45m, 2h");
  cmd.add_option("--max-failures", s.engine.max_failures,
                 "Stop (exit 3) once this many values could not be decrypted; 0: no limit")
      ->check(CLI::NonNegativeNumber);
  return batch_size;
}

// The run's state, its records, and waiting on the database.
void add_run_options(CLI::App& cmd, RotateSettings& s, DurationTexts& d) {
  cmd.add_option("--report", s.report, "Write a JSON report to this file");
  add_state_schema_option(cmd, s.writer.state_schema, "Schema for rekey's own state tables");
  cmd.add_option("--lock-timeout", d.lock_timeout, "Longest wait for a row lock per batch")->capture_default_str();
  cmd.add_option("--statement-timeout", d.statement_timeout, "Longest statement; 0: none")->capture_default_str();
  cmd.add_option("--metrics-file", s.metrics_file, "Write Prometheus metrics here (textfile collector), atomically");
  cmd.add_option("--audit-log", s.audit_log, "Append one JSON line per event to this file");
  cmd.add_option("--retry-for", d.retry_for, "Keep retrying transient database errors this long")
      ->capture_default_str();
}

// The options rotate and rollback share; the callback checks and runs them.
CLI::App* add_rotation_command(CLI::App& root, const std::string& name, const std::string& description,
                               const std::shared_ptr<RotateSettings>& s, int& exit_code) {
  auto d = std::make_shared<DurationTexts>();
  s->engine.threads = std::max(1u, std::thread::hardware_concurrency());
  CLI::App* cmd = root.add_subcommand(name, description);
  cmd->set_config("--config", "", "Read options from a TOML file");
  add_scope_options(*cmd, *s);
  const CLI::Option* batch_size = add_pacing_options(*cmd, *s, *d);
  add_run_options(*cmd, *s, *d);
  add_worker_options(*cmd, *s, *d);
  cmd->callback([s, d, batch_size, name, &exit_code] {
    if (name == "rotate" && s->columns.empty() && !s->discover) {
      throw UsageError("rotate: name at least one --column, or use --discover");
    }
    s->throttle.adaptive_batch = batch_size->count() == 0;
    parse_durations(*d, *s);
    s->keys.hidden_env.push_back(s->db.env);
    if (s->restart && s->workers.share == db::LockShare::kJoin) {
      throw UsageError("rotate: --join continues the run in progress; --restart starts another: choose one");
    }
    exit_code = run_rotate(*s);
  });
  return cmd;
}

}  // namespace

void add_rotate_command(CLI::App& root, int& exit_code) {
  auto s = std::make_shared<RotateSettings>();
  CLI::App* cmd = add_rotation_command(root, "rotate",
                                       "Re-encrypt every value of the target columns under the new key; resumable.\n"
                                       "Example: NEW_ENCRYPTION_KEY=... OLD_ENCRYPTION_KEY=... rekey rotate "
                                       "--column public.users.phone_enc --report rotate.json",
                                       s, exit_code);
  add_target_options(*cmd, *s);
}

void add_rollback_command(CLI::App& root, int& exit_code) {
  auto s = std::make_shared<RotateSettings>();
  CLI::App* cmd = add_rotation_command(
      root, "rollback",
      "Take run N's values back to the key they were under before: the same engine as rotate (resumable, "
      "compare-and-swap), recorded as a new run linked to N.\n"
      "The keys are named as when run N ran: the new key is the one N rotated to, the first old key the one it "
      "rotated from.\n"
      "Example: NEW_ENCRYPTION_KEY=<N's new key> OLD_ENCRYPTION_KEY=<N's old key> rekey rollback --run 7",
      s, exit_code);
  cmd->add_option_function<std::int64_t>(
         "--run", [s](std::int64_t id) { s->rollback_of = id; }, "The run to take back (rekey status lists them)")
      ->required()
      ->check(CLI::PositiveNumber);
  ignore_config_keys(*cmd, {"column", "table", "discover", "exclude", "restart"},
                     "a rollback covers the columns of the run it takes back");
}

}  // namespace rekey
