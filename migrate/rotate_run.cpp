#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "db/catalog.h"
#include "db/connection.h"
#include "db/pg_row_scanner.h"
#include "db/pg_table_reader.h"
#include "db/pg_table_writer.h"
#include "db/replica_lag.h"
#include "db/snapshot.h"
#include "db/state_store.h"
#include "db/table_lock.h"
#include "migrate/audit_log.h"
#include "migrate/db_options.h"
#include "migrate/duration.h"
#include "migrate/errors.h"
#include "migrate/key_source.h"
#include "migrate/log.h"
#include "migrate/metrics_file.h"
#include "migrate/progress.h"
#include "migrate/relation_census.h"
#include "migrate/rotate_options.h"
#include "migrate/rotation_engine.h"
#include "migrate/run_report.h"
#include "migrate/target_resolver.h"
#include "migrate/targets.h"
#include "migrate/throttle.h"

namespace rekey {
namespace {

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

// The schema.table.column lines two targets keys (targets_key) share.
bool overlaps(const std::string& a, const std::string& b) {
  std::set<std::string> lines;
  std::istringstream in(a);
  for (std::string line; std::getline(in, line);) lines.insert(line);
  std::istringstream other(b);
  for (std::string line; std::getline(other, line);) {
    if (lines.count(line) > 0) return true;
  }
  return false;
}

// Finds the run to continue, or starts one. One new key per column: throws
// UsageError when an unfinished run over any of these columns has another new
// key and --restart is not given; --restart supersedes every unfinished run
// over them.
std::int64_t open_run(db::StateStore& store, const RotateOptions& o, const std::string& targets,
                      const crypto::Keyring& keyring) {
  const std::string& new_fp = keyring.new_key().fingerprint();
  std::vector<std::int64_t> overlapping;
  for (const auto& other : store.unfinished_runs()) {
    if (!overlaps(other.targets, targets)) continue;
    overlapping.push_back(other.id);
    if (other.new_key_fingerprint != new_fp && !o.restart) {
      throw UsageError(fmt::format(
          "run {} is {} with new key {}, not {}, over some of these columns: finish it with that key, or pass "
          "--restart to start over with this one (values already under the new key are never rewritten)",
          other.id, other.status, other.new_key_fingerprint, new_fp));
    }
  }
  const auto last = store.latest_run(targets);
  if (last && last->status != "finished" && !last->superseded_by && !o.restart) {
    store.set_runner(last->id, runner_identity(), join_fingerprints(keyring));
    log::info("resuming run {} (new key {})", last->id, new_fp);
    return last->id;
  }
  const std::int64_t id =
      store.create_run(targets, new_fp, join_fingerprints(keyring), command_line(), runner_identity());
  for (std::int64_t other : overlapping) store.supersede(other, id);
  log::info("started run {} (new key {})", id, new_fp);
  return id;
}

bool any_failure(const RunReport& report, std::int64_t recorded_failures) {
  if (recorded_failures > 0 || !report.unchecked.empty()) return true;
  for (const auto& u : report.uncovered) {
    if (u.not_new > 0) return true;
  }
  for (const auto& t : report.tables) {
    for (const auto& c : t.counts) {
      if (c.undecryptable > 0) return true;
    }
  }
  return false;
}

// `recorded_failures`: the failures the state holds for the run, wherever
// they were found (first read, pending rows, final sweep).
int exit_code_for(const RunReport& report, StopReason stop, bool all_completed, std::int64_t recorded_failures) {
  if (stop == StopReason::kMaxFailures) return to_int(ExitCode::kUndecryptable);
  if (stop != StopReason::kNone || !all_completed) return to_int(ExitCode::kStopped);
  if (any_failure(report, recorded_failures)) return to_int(ExitCode::kUndecryptable);
  return to_int(ExitCode::kOk);
}

// Counts, read-only, the columns rotate found holding tokens but cannot
// rewrite: what they still hold under an old key makes the run exit 3.
std::vector<UncoveredColumn> census_uncovered(const std::string& conninfo, const RotationTargets& targets,
                                              const crypto::Keyring& keyring, const RotateOptions& o,
                                              StopControl& stop) {
  std::vector<UncoveredColumn> out;
  if (targets.uncovered.empty()) return out;
  CensusSettings settings;
  settings.threads = o.threads;
  settings.batch_bytes = o.batch_bytes;
  const db::ExportedSnapshot snapshot(conninfo, std::chrono::milliseconds(0));
  for (const auto& rel : targets.uncovered) {
    const TableShape shape = rel.shape(ValuePolicy::kValuesWithToken);
    const CensusOutcome census = census_relation(conninfo, snapshot.id(), shape, keyring, settings, stop, nullptr);
    for (std::size_t c = 0; c < rel.columns.size(); ++c) {
      const CensusCounts& k = census.counts[c];
      out.push_back({shape.column_display(c), why_not_rotatable(rel, rel.columns[c]).value_or(""), k.total,
                     census.completed ? k.not_new() : k.total});
    }
  }
  return out;
}

EngineSettings engine_settings(const RotateOptions& o) {
  EngineSettings settings;
  settings.batch_size = o.batch_size;
  settings.batch_bytes = o.batch_bytes;
  settings.threads = o.threads;
  settings.max_failures = o.max_failures;
  settings.retry.retry_for = parse_duration(o.retry_for, "--retry-for");
  return settings;
}

ThrottleSettings throttle_settings(const RotateOptions& o) {
  ThrottleSettings t;
  t.max_rate = o.max_rate;
  t.pause_file = o.pause_file;
  if (!o.max_replica_lag.empty()) t.max_replica_lag = parse_duration(o.max_replica_lag, "--max-replica-lag");
  t.adaptive_batch = !o.batch_size_given;
  t.batch_time = parse_duration(o.batch_time, "--batch-time");
  return t;
}

// --disable-triggers: refused (UsageError) unless this role may set
// session_replication_role; warns what the writes will skip.
db::Triggers trigger_mode(const RotateOptions& o, const std::string& conninfo) {
  if (!o.disable_triggers) return db::Triggers::kFire;
  if (!db::can_skip_triggers(conninfo)) {
    throw UsageError(
        "--disable-triggers needs a superuser (or SET privilege on session_replication_role): this role may not "
        "set session_replication_role; run without it, and the application's UPDATE triggers fire for every row");
  }
  log::warn(
      "--disable-triggers: rekey's writes fire no trigger and no rule: neither the application's triggers (audit, "
      "updated_at, replication, cache invalidation) nor the foreign-key checks of those writes");
  return db::Triggers::kSkip;
}

nlohmann::json counts_json(const RunReport& report) {
  nlohmann::json tables = nlohmann::json::object();
  for (const auto& t : report.tables) {
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
      tables[t.table][t.columns[c]] = t.counts[c];
    }
  }
  return tables;
}

}  // namespace

int run_rotate(const RotateOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  StopControl stop;
  install_signal_handlers(stop);  // before key derivation: a signal at any point stops cleanly
  const std::string conninfo = resolve_conninfo(o.db);
  const auto keyring = load_keyring(o.keys, OldKeyPolicy::kRequired);
  AuditLog audit(o.audit_log);
  MetricsFile metrics(o.metrics_file, "rotate");
  if (!o.max_duration.empty()) stop.set_deadline(started + parse_duration(o.max_duration, "--max-duration"));
  EngineSettings settings = engine_settings(o);
  db::WriterSettings writer_settings;
  writer_settings.state_schema = o.state_schema;
  writer_settings.lock_timeout = parse_duration(o.lock_timeout, "--lock-timeout");
  writer_settings.statement_timeout = parse_duration(o.statement_timeout, "--statement-timeout");
  writer_settings.triggers = trigger_mode(o, conninfo);
  db::ReplicaLagProbe lag_probe(conninfo);
  Throttle throttle(throttle_settings(o), o.batch_size, [&lag_probe] { return lag_probe.max_lag_seconds(); });
  settings.throttle = &throttle;

  const RotationTargets resolved = resolve_targets(conninfo, o.columns, o.discover, o.state_schema, o.exclude);
  const std::vector<TableShape>& shapes = resolved.shapes;
  std::vector<TableTarget> targets;
  for (const auto& s : shapes) targets.push_back({s.schema, s.table, s.columns});
  const std::string targets_id = targets_key(targets);

  RunReport report;
  report.dry_run = o.dry_run;
  report.status = "running";
  report.new_key_fingerprint = keyring->new_key().fingerprint();
  for (std::size_t i = 0; i < keyring->old_key_count(); ++i) {
    report.old_key_fingerprints.push_back(keyring->old_key(i).fingerprint());
  }
  report.unchecked = resolved.unchecked;
  report.excluded = resolved.excluded;

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
  audit.record("run_start", {{"command", "rotate"},
                             {"run_id", report.run_id},
                             {"dry_run", o.dry_run},
                             {"targets", targets_id},
                             {"new_key_fingerprint", report.new_key_fingerprint},
                             {"old_key_fingerprints", report.old_key_fingerprints},
                             {"command_line", command_line()}});

  bool all_completed = true;
  std::map<std::string, std::int64_t> failure_reasons;
  const ProgressStyle style = default_progress_style(!log::enabled(log::Level::kInfo));
  for (const auto& shape : shapes) {
    report.tables.push_back({shape.display_name(), shape.columns, std::vector<ColumnCounts>(shape.columns.size())});
    TableReport& table = report.tables.back();
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
      // A table done in an earlier invocation still gets its final sweep:
      // values copied behind its checkpoint since then are rotated too.
      table.completed = progress.done;
      settings.failures_before = store->failure_count(report.run_id);
      writer = std::make_unique<db::PgTableWriter>(conninfo, shape, writer_settings, table.counts);
      settings.open_scan = [&conninfo, &shape] {
        return std::make_unique<db::PgRowScanner>(conninfo, shape, db::ScanSettings{});
      };
    } else {
      writer = std::make_unique<DryRunWriter>(shape.display_name(), shape.columns, report.failures);
    }
    if (stop.should_stop()) {
      all_completed = false;
      continue;
    }
    db::PgTableReader reader(conninfo, shape);
    ProgressReporter progress(style, shape.display_name(), seen_before,
                              static_cast<std::int64_t>(shape.estimated_rows));
    const std::vector<ColumnCounts> before = table.counts;
    const auto absorb = [&](const TableOutcome& so_far) {
      for (std::size_t c = 0; c < shape.columns.size(); ++c) table.counts[c] = before[c] + so_far.counts[c];
      table.rows_seen = so_far.rows_seen;
      table.retries = so_far.retries;
      table.batches = so_far.batches;
      table.pending_not_found = so_far.pending_not_found;
      table.swept = so_far.swept;
    };
    const TableOutcome outcome = rotate_table(shape, *keyring, reader, *writer, start_after, settings, stop,
                                              [&](const TableOutcome& so_far, double seconds) {
                                                progress.update(so_far.rows_seen, seconds);
                                                absorb(so_far);
                                                report.duration_seconds = elapsed();
                                                report.seconds_paused = throttle.seconds_paused();
                                                report.seconds_throttled = throttle.seconds_throttled();
                                                metrics.update(report, false);
                                              });
    progress.finish(outcome.rows_seen, elapsed());
    absorb(outcome);
    table.completed = outcome.completed;
    for (const auto& [reason, n] : outcome.failure_reasons) failure_reasons[reason] += n;
    log::debug("{}: {:.2f}s reading, {:.2f}s re-encrypting (all threads), {:.2f}s writing, {} batches",
               shape.display_name(), outcome.read_seconds, outcome.crypto_seconds, outcome.write_seconds,
               outcome.batches);
    if (outcome.completed && store) store->mark_table_done(report.run_id, shape.display_name());
    if (!outcome.completed) all_completed = false;
    if (outcome.pending_left > 0) {
      log::warn("{}: {} row(s) kept changing under rekey; rerun to finish them", shape.display_name(),
                outcome.pending_left);
    }
  }

  if (!stop.should_stop()) report.uncovered = census_uncovered(conninfo, resolved, *keyring, o, stop);
  report.duration_seconds = elapsed();
  report.seconds_paused = throttle.seconds_paused();
  report.seconds_throttled = throttle.seconds_throttled();
  report.stop_reason = to_string(stop.reason());
  const std::int64_t recorded_failures = store ? store->failure_count(report.run_id) : 0;
  report.exit_code = exit_code_for(report, stop.reason(), all_completed, recorded_failures);
  report.status = stop.reason() != StopReason::kNone || !all_completed ? "stopped" : "finished";
  if (store) {
    try {
      store->set_status(report.run_id, report.status, report.exit_code);
      for (const auto& f : store->failures(report.run_id, 1000)) {
        report.failures.push_back(
            {{"table", f.table_name}, {"column", f.column_name}, {"primary_key", f.primary_key}, {"reason", f.reason}});
      }
    } catch (const std::exception& e) {
      // The data and its checkpoints are committed; only the run's summary row is stale.
      log::warn("could not record the run's status: {}", db::error_summary(e));
    }
  }
  metrics.update(report, true);
  audit.record(report.status == "stopped" ? "run_stop" : "run_finish",
               {{"command", "rotate"},
                {"run_id", report.run_id},
                {"dry_run", o.dry_run},
                {"exit_code", report.exit_code},
                {"stop_reason", report.stop_reason},
                {"duration_seconds", report.duration_seconds},
                {"new_key_fingerprint", report.new_key_fingerprint},
                {"old_key_fingerprints", report.old_key_fingerprints},
                {"counts", counts_json(report)},
                {"failures_by_reason", failure_reasons}});
  print_rotate_summary(report, o.dry_run);
  if (!o.report.empty()) write_json_file(o.report, to_json(report));
  return report.exit_code;
}

}  // namespace rekey
