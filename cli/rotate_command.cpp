#include "cli/rotate_command.h"

#include <CLI/CLI.hpp>
#include <memory>

#include "cli/db_options.h"
#include "cli/rotate_options.h"
#include "common/errors.h"

namespace rekey {

void add_rotate_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<RotateOptions>();
  CLI::App* cmd = root.add_subcommand("rotate",
                                      "Re-encrypt every value of the target columns under the new key; resumable.\n"
                                      "Example: NEW_ENCRYPTION_KEY=... OLD_ENCRYPTION_KEY=... rekey rotate "
                                      "--column public.users.phone_enc --report rotate.json");
  cmd->set_config("--config", "", "Read options from a TOML/INI file (CLI11 format)");
  add_db_option(*cmd, o->db);
  cmd->add_option("--column", o->columns, "[SCHEMA.]TABLE.COLUMN to rotate (repeatable; SQL identifier rules)");
  cmd->add_flag("--discover", o->discover,
                "Rotate every column holding a token anywhere in the database (every value is searched); columns "
                "it cannot rewrite are counted at the end and make it exit 3");
  cmd->add_option("--exclude", o->exclude,
                  "SCHEMA.TABLE[.COLUMN] to leave out of --discover (repeatable); the report lists it");
  add_key_options(*cmd, o->keys);
  cmd->add_flag("--dry-run", o->dry_run, "Read, decrypt, re-encrypt and check in memory; write nothing at all");
  cmd->add_flag("--disable-triggers", o->disable_triggers,
                "rekey's writes fire no trigger or rule (session_replication_role = replica): the application's "
                "UPDATE triggers and foreign-key checks are skipped; superuser only");
  CLI::Option* batch_size = cmd->add_option("--batch-size", o->batch_size,
                                            "Rows per batch and transaction (fixed; default: steered by --batch-time)")
                                ->check(CLI::Range(1, 1000000));
  add_batch_bytes_option(*cmd, o->batch_bytes);
  cmd->add_option("--batch-time", o->batch_time, "Target time per batch when --batch-size is not given")
      ->capture_default_str();
  cmd->add_option("--max-rate", o->max_rate, "Rows per second at most; 0: no cap")->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-replica-lag", o->max_replica_lag, "Pause while a standby's replay lag exceeds this, e.g. 10s");
  cmd->add_option("--pause-file", o->pause_file, "Pause while this file exists");
  cmd->add_option("--threads", o->threads, "Re-encryption threads")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--max-duration", o->max_duration, "Stop cleanly (exit 75) after this long, e.g. 90s, 45m, 2h");
  cmd->add_option("--max-failures", o->max_failures,
                  "Stop (exit 3) once this many values could not be decrypted; 0: no limit")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--report", o->report, "Write a JSON report to this file");
  cmd->add_flag("--restart", o->restart, "Start a new run instead of resuming the last one over these columns");
  add_state_schema_option(*cmd, o->state_schema, "Schema for rekey's own state tables");
  cmd->add_option("--lock-timeout", o->lock_timeout, "Longest wait for a row lock per batch")->capture_default_str();
  cmd->add_option("--statement-timeout", o->statement_timeout, "Longest statement; 0: none")->capture_default_str();
  cmd->add_option("--metrics-file", o->metrics_file, "Write Prometheus metrics here (textfile collector), atomically");
  cmd->add_option("--audit-log", o->audit_log, "Append one JSON line per event to this file");
  cmd->add_option("--retry-for", o->retry_for, "Keep retrying transient database errors this long")
      ->capture_default_str();
  cmd->callback([o, batch_size, &exit_code] {
    if (o->columns.empty() && !o->discover) throw UsageError("rotate: name at least one --column, or use --discover");
    o->batch_size_given = batch_size->count() > 0;
    exit_code = run_rotate(*o);
  });
}

}  // namespace rekey
