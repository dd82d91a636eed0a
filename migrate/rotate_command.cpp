#include "migrate/rotate_command.h"

#include <CLI/CLI.hpp>
#include <memory>
#include <thread>

#include "db/catalog.h"
#include "db/connection.h"
#include "db/pg_table_reader.h"
#include "db/pg_table_writer.h"
#include "db/replica_lag.h"
#include "db/state_store.h"
#include "db/table_lock.h"
#include "migrate/db_options.h"
#include "migrate/duration.h"
#include "migrate/errors.h"
#include "migrate/key_source.h"
#include "migrate/log.h"
#include "migrate/progress.h"
#include "migrate/rotation_engine.h"
#include "migrate/run_report.h"
#include "migrate/target_resolver.h"
#include "migrate/targets.h"
#include "migrate/throttle.h"

namespace rekey {
namespace {

struct RotateOptions {
  std::string db;
  std::vector<std::string> columns;
  bool discover = false;
  KeyOptions keys;
  bool dry_run = false;
  std::size_t batch_size = 2000;
  std::size_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::string max_duration;
  std::int64_t max_failures = 0;
  std::string report;
  bool restart = false;
  std::string state_schema = "rekey";
  std::string lock_timeout = "1s";
  std::string statement_timeout = "0";
  std::string retry_for = "5m";
  double max_rate = 0;
  std::string max_replica_lag;
  std::string pause_file;
  std::string batch_time = "250ms";
  bool batch_size_given = false;
};

// Writes nothing: the dry run's writer. Keeps the first failures for the report.
class DryRunWriter final : public TableWriter {
 public:
  DryRunWriter(std::string table, std::vector<std::string> columns, nlohmann::json& failures)
      : table_(std::move(table)), columns_(std::move(columns)), failures_(failures) {}
  std::vector<std::size_t> write(const BatchWrite& batch) override {
    for (const auto& f : batch.failures) {
      if (failures_.size() >= kMaxListed) break;
      failures_.push_back({{"table", table_},
                           {"column", columns_.at(f.column)},
                           {"primary_key", key_display(f.key)},
                           {"reason", f.reason}});
    }
    return {};
  }
  std::vector<KeyValues> pending() override { return {}; }

 private:
  static constexpr std::size_t kMaxListed = 1000;
  std::string table_;
  std::vector<std::string> columns_;
  nlohmann::json& failures_;
};

std::string join_fingerprints(const crypto::Keyring& keyring) {
  std::string out;
  for (std::size_t i = 0; i < keyring.old_key_count(); ++i)
    out += (i > 0 ? "," : "") + keyring.old_key(i).fingerprint();
  return out;
}

// Finds the run to continue, or starts one. Throws UsageError when the same
// targets are mid-rotation to a different new key and --restart is not given.
std::int64_t open_run(db::StateStore& store, const RotateOptions& o, const std::string& targets,
                      const crypto::Keyring& keyring) {
  const std::string& new_fp = keyring.new_key().fingerprint();
  const auto last = store.latest_run(targets);
  if (last && last->status != "finished" && !o.restart) {
    if (last->new_key_fingerprint != new_fp) {
      throw UsageError(fmt::format(
          "run {} over these columns is {} with new key {}, not {}: finish it with that key, or pass --restart "
          "to start over with this one (values already under the new key are never rewritten)",
          last->id, last->status, last->new_key_fingerprint, new_fp));
    }
    store.set_runner(last->id, runner_identity(), join_fingerprints(keyring));
    log::info("resuming run {} (new key {})", last->id, new_fp);
    return last->id;
  }
  const std::int64_t id =
      store.create_run(targets, new_fp, join_fingerprints(keyring), command_line(), runner_identity());
  log::info("started run {} (new key {})", id, new_fp);
  return id;
}

int exit_code_for(const RunReport& report, StopReason stop, bool all_completed) {
  if (stop == StopReason::kMaxFailures) return to_int(ExitCode::kUndecryptable);
  if (stop != StopReason::kNone || !all_completed) return to_int(ExitCode::kStopped);
  for (const auto& t : report.tables) {
    for (const auto& c : t.counts) {
      if (c.undecryptable > 0) return to_int(ExitCode::kUndecryptable);
    }
  }
  return to_int(ExitCode::kOk);
}

int run_rotate(const RotateOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const std::string conninfo = resolve_conninfo(o.db);
  const auto keyring = load_keyring(o.keys, OldKeyPolicy::kRequired);
  StopControl stop;
  if (!o.max_duration.empty()) stop.set_deadline(started + parse_duration(o.max_duration, "--max-duration"));
  EngineSettings settings;
  settings.batch_size = o.batch_size;
  settings.threads = o.threads;
  settings.max_failures = o.max_failures;
  settings.retry.retry_for = parse_duration(o.retry_for, "--retry-for");
  db::WriterSettings writer_settings;
  writer_settings.state_schema = o.state_schema;
  writer_settings.lock_timeout = parse_duration(o.lock_timeout, "--lock-timeout");
  writer_settings.statement_timeout = parse_duration(o.statement_timeout, "--statement-timeout");

  ThrottleSettings throttle_settings;
  throttle_settings.max_rate = o.max_rate;
  throttle_settings.pause_file = o.pause_file;
  if (!o.max_replica_lag.empty())
    throttle_settings.max_replica_lag = parse_duration(o.max_replica_lag, "--max-replica-lag");
  throttle_settings.adaptive_batch = !o.batch_size_given;
  throttle_settings.batch_time = parse_duration(o.batch_time, "--batch-time");
  db::ReplicaLagProbe lag_probe(conninfo);
  Throttle throttle(throttle_settings, o.batch_size, [&lag_probe] { return lag_probe.max_lag_seconds(); });
  settings.throttle = &throttle;

  const std::vector<TableShape> shapes = resolve_targets(conninfo, o.columns, o.discover, o.state_schema);
  std::vector<TableTarget> targets;
  for (const auto& s : shapes) targets.push_back({s.schema, s.table, s.columns});
  const std::string targets_id = targets_key(targets);

  RunReport report;
  report.dry_run = o.dry_run;
  report.new_key_fingerprint = keyring->new_key().fingerprint();
  for (std::size_t i = 0; i < keyring->old_key_count(); ++i)
    report.old_key_fingerprints.push_back(keyring->old_key(i).fingerprint());

  std::unique_ptr<db::StateStore> store;
  std::unique_ptr<db::TableLocks> locks;
  if (!o.dry_run) {
    store = std::make_unique<db::StateStore>(conninfo, o.state_schema);
    store->ensure_schema();
    locks = std::make_unique<db::TableLocks>(conninfo);
    for (const auto& shape : shapes) {
      if (auto holder = locks->try_lock(shape)) {
        throw UsageError("table " + shape.display_name() + " is being rotated by another rekey: " + *holder);
      }
    }
    settings.still_locked = [&locks] { return locks->still_held(); };
    report.run_id = open_run(*store, o, targets_id, *keyring);
    writer_settings.run_id = report.run_id;
  }
  install_signal_handlers(stop);

  bool all_completed = true;
  const ProgressStyle style = default_progress_style(!log::enabled(log::Level::kInfo));
  for (const auto& shape : shapes) {
    TableReport table{
        shape.display_name(), shape.columns, std::vector<ColumnCounts>(shape.columns.size()), 0, 0, false};
    std::optional<KeyValues> start_after;
    std::int64_t seen_before = 0;
    std::unique_ptr<TableWriter> writer;
    if (store) {
      const db::TableProgress progress = store->start_table(report.run_id, shape);
      start_after = progress.last_key;
      seen_before = progress.rows_seen;
      for (const auto& [column, counts] : progress.counts) {
        for (std::size_t c = 0; c < shape.columns.size(); ++c) {
          if (shape.columns[c] == column) table.counts[c] = counts;
        }
      }
      if (progress.done) {
        table.completed = true;
        report.tables.push_back(table);
        continue;
      }
      settings.failures_before = store->failure_count(report.run_id);
      writer = std::make_unique<db::PgTableWriter>(conninfo, shape, writer_settings, table.counts);
    } else {
      writer = std::make_unique<DryRunWriter>(shape.display_name(), shape.columns, report.failures);
    }
    if (stop.should_stop()) {
      all_completed = false;
      report.tables.push_back(table);
      continue;
    }
    db::PgTableReader reader(conninfo, shape);
    ProgressReporter progress(style, shape.display_name(), seen_before,
                              static_cast<std::int64_t>(shape.estimated_rows));
    const TableOutcome outcome =
        rotate_table(shape, *keyring, reader, *writer, start_after, settings, stop,
                     [&](const ProgressUpdate& u) { progress.update(u.rows_seen, u.elapsed_seconds); });
    progress.finish(outcome.rows_seen,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    for (std::size_t c = 0; c < shape.columns.size(); ++c) table.counts[c] += outcome.counts[c];
    table.rows_seen = outcome.rows_seen;
    table.retries = outcome.retries;
    table.completed = outcome.completed;
    log::debug("{}: {:.2f}s reading, {:.2f}s re-encrypting (all threads), {:.2f}s writing, {} batches",
               shape.display_name(), outcome.read_seconds, outcome.crypto_seconds, outcome.write_seconds,
               outcome.batches);
    if (outcome.completed && store) store->mark_table_done(report.run_id, shape.display_name());
    if (!outcome.completed) all_completed = false;
    if (outcome.pending_left > 0) {
      log::warn("{}: {} row(s) kept changing under rekey; rerun to finish them", shape.display_name(),
                outcome.pending_left);
    }
    report.tables.push_back(std::move(table));
  }

  report.duration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  report.seconds_paused = throttle.seconds_paused();
  report.seconds_throttled = throttle.seconds_throttled();
  report.stop_reason = to_string(stop.reason());
  report.exit_code = exit_code_for(report, stop.reason(), all_completed);
  report.status = report.exit_code == to_int(ExitCode::kStopped) ? "stopped" : "finished";
  if (store) {
    try {
      store->set_status(report.run_id, report.status, report.exit_code);
      for (const auto& f : store->failures(report.run_id, 1000)) {
        report.failures.push_back(
            {{"table", f.table_name}, {"column", f.column_name}, {"primary_key", f.primary_key}, {"reason", f.reason}});
      }
    } catch (const std::exception& e) {
      // The data and its checkpoints are committed; only the run's summary row is stale.
      log::warn("could not record the run's status: {}", e.what());
    }
  }
  print_rotate_summary(report, o.dry_run);
  if (!o.report.empty()) write_json_file(o.report, to_json(report));
  return report.exit_code;
}

}  // namespace

void add_rotate_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<RotateOptions>();
  CLI::App* cmd =
      root.add_subcommand("rotate",
                          "Re-encrypt every value of the target columns under the new key; resumable.\n"
                          "Example: NEW_ENCRYPTION_KEY=... OLD_ENCRYPTION_KEY=... rekey rotate --db \"$DATABASE_URL\" "
                          "--column public.users.phone_enc --report rotate.json");
  cmd->set_config("--config", "", "Read options from a TOML/INI file (CLI11 format)");
  cmd->add_option("--db", o->db,
                  "libpq connection string or postgresql:// URI (default: DATABASE_URL, then PG* variables)");
  cmd->add_option("--column", o->columns, "[SCHEMA.]TABLE.COLUMN to rotate (repeatable; SQL identifier rules)");
  cmd->add_flag("--discover", o->discover, "Rotate every column that `rekey discover` finds");
  add_key_options(*cmd, o->keys);
  cmd->add_flag("--dry-run", o->dry_run, "Read, decrypt, re-encrypt and check in memory; write nothing at all");
  CLI::Option* batch_size = cmd->add_option("--batch-size", o->batch_size,
                                            "Rows per batch and transaction (fixed; default: steered by --batch-time)")
                                ->check(CLI::Range(1, 1000000));
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
  cmd->add_option("--state-schema", o->state_schema, "Schema for rekey's own state tables")->capture_default_str();
  cmd->add_option("--lock-timeout", o->lock_timeout, "Longest wait for a row lock per batch")->capture_default_str();
  cmd->add_option("--statement-timeout", o->statement_timeout, "Longest statement; 0: none")->capture_default_str();
  cmd->add_option("--retry-for", o->retry_for, "Keep retrying transient database errors this long")
      ->capture_default_str();
  cmd->callback([o, batch_size, &exit_code] {
    if (o->columns.empty() && !o->discover) throw UsageError("rotate: name at least one --column, or use --discover");
    o->batch_size_given = batch_size->count() > 0;
    exit_code = run_rotate(*o);
  });
}

}  // namespace rekey
