#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "cli/audit_log.h"
#include "cli/db_options.h"
#include "cli/exit_code.h"
#include "cli/key_source.h"
#include "cli/metrics_file.h"
#include "cli/progress.h"
#include "cli/relation_census.h"
#include "cli/rotate_options.h"
#include "cli/run_report.h"
#include "cli/target_resolver.h"
#include "cli/targets.h"
#include "common/atomic_file.h"
#include "common/duration.h"
#include "common/errors.h"
#include "common/log.h"
#include "db/catalog.h"
#include "db/connection.h"
#include "db/pg_row_scanner.h"
#include "db/pg_table_reader.h"
#include "db/pg_table_writer.h"
#include "db/preflight.h"
#include "db/replica_lag.h"
#include "db/snapshot.h"
#include "db/state_store.h"
#include "db/table_lock.h"
#include "migrate/rotation_engine.h"
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
                           {"primary_key", log::json_text(key_display(f.key))},
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
          other.id, db::to_string(other.status), other.new_key_fingerprint, new_fp));
    }
  }
  const auto last = store.latest_run(targets);
  if (last && last->status != db::RunStatus::kFinished && !last->superseded_by && !o.restart) {
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
// they were found (first read, pending rows, final sweep). Stopping at
// --max-failures is a finding, not a stop.
RunOutcome rotate_outcome(const RunReport& report, StopReason stop, bool all_completed,
                          std::int64_t recorded_failures) {
  RunOutcome outcome;
  outcome.stopped = stop != StopReason::kMaxFailures && (stop != StopReason::kNone || !all_completed);
  outcome.found_failures = stop == StopReason::kMaxFailures || any_failure(report, recorded_failures);
  outcome.stop_defers_failures = true;
  return outcome;
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
  t.replica_lag_unknown_for = parse_duration(o.retry_for, "--retry-for");
  t.adaptive_batch = !o.batch_size_given;
  t.batch_time = parse_duration(o.batch_time, "--batch-time");
  return t;
}

// Throws UsageError when the server or session cannot write (a standby, a read-only session).
void refuse_read_only_server(const std::string& conninfo) {
  if (auto why = db::why_read_only(conninfo)) throw UsageError(*why);
}

// Throws UsageError naming each privilege on the targets that rekey's role lacks.
void refuse_missing_privileges(const std::string& conninfo, const std::vector<TableShape>& shapes) {
  const std::vector<std::string> missing = db::missing_privileges(conninfo, shapes);
  if (missing.empty()) return;
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : "; ") + log::printable(m);
  throw UsageError("rekey's role lacks privileges rotate needs (see sql/grants.sql): " + list);
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

// --report's file must be writable before anything is: a run that rotated
// everything and then cannot say so would exit 1. Throws UsageError.
void refuse_unwritable_report(const std::string& path) {
  if (path.empty()) return;
  try {
    AtomicFile probe(path);  // a temporary beside it, removed again
  } catch (const std::exception& e) {
    throw UsageError(std::string("--report: ") + e.what());
  }
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

// One invocation of `rekey rotate`, in named stages: open (keys, targets,
// state, locks, the run's row), rotate each table, account (what rotate could
// not reach, the exit code), publish (state, metrics, audit, summary, report).
// A run that ends in an error once its row exists is recorded as `failed`,
// with its report and an audit `run_stop`, and the error propagates.
// Single-threaded; owns every connection it opens.
class RotateRun {
 public:
  explicit RotateRun(const RotateOptions& o)
      : o_(o),
        conninfo_(resolve_conninfo(o.db)),
        audit_(o.audit_log),
        metrics_(o.metrics_file, "rotate"),
        lag_probe_(conninfo_),
        throttle_(throttle_settings(o), o.batch_size, [this] { return lag_probe_.read(); }) {
    install_signal_handlers(stop_);  // before key derivation: a signal at any point stops cleanly
    keyring_ = load_keyring(o.keys, OldKeyPolicy::kRequired);
  }

  int run() {
    open();
    try {
      for (const auto& shape : resolved_.shapes) rotate_one(shape);
      account();
    } catch (const std::exception& e) {
      record_failure(e);
      throw;
    }
    publish();
    return report_.exit_code;
  }

 private:
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(); }

  void open() {
    if (!o_.max_duration.empty()) stop_.set_deadline(started_ + parse_duration(o_.max_duration, "--max-duration"));
    settings_ = engine_settings(o_);
    settings_.throttle = &throttle_;
    writer_settings_.state_schema = o_.state_schema;
    writer_settings_.lock_timeout = parse_duration(o_.lock_timeout, "--lock-timeout");
    writer_settings_.statement_timeout = parse_duration(o_.statement_timeout, "--statement-timeout");
    writer_settings_.triggers = trigger_mode(o_, conninfo_);
    if (!o_.dry_run) refuse_read_only_server(conninfo_);
    resolved_ = resolve_targets(conninfo_, o_.columns, o_.discover, o_.state_schema, o_.exclude);
    refuse_missing_privileges(conninfo_, resolved_.shapes);
    if (!o_.max_replica_lag.empty()) {
      if (auto unreadable = lag_probe_.start()) throw UsageError("--max-replica-lag: " + *unreadable);
    }
    std::vector<TableTarget> targets;
    for (const auto& s : resolved_.shapes) targets.push_back({s.schema, s.table, s.columns});
    targets_id_ = targets_key(targets);

    report_.dry_run = o_.dry_run;
    report_.status = db::RunStatus::kRunning;
    report_.new_key_fingerprint = keyring_->new_key().fingerprint();
    for (std::size_t i = 0; i < keyring_->old_key_count(); ++i) {
      report_.old_key_fingerprints.push_back(keyring_->old_key(i).fingerprint());
    }
    report_.unchecked = resolved_.unchecked;
    report_.excluded = resolved_.excluded;
    refuse_unwritable_report(o_.report);
    if (!o_.dry_run) open_state();
    audit_.record("run_start", {{"command", "rotate"},
                                {"run_id", report_.run_id},
                                {"dry_run", o_.dry_run},
                                {"targets", targets_id_},
                                {"new_key_fingerprint", report_.new_key_fingerprint},
                                {"old_key_fingerprints", report_.old_key_fingerprints},
                                {"command_line", command_line()}});
  }

  // The state schema, one lock per table, and the run's row (new or resumed).
  void open_state() {
    store_ = std::make_unique<db::StateStore>(conninfo_, o_.state_schema);
    store_->ensure_schema();
    locks_ = std::make_unique<db::TableLocks>(conninfo_);
    for (const auto& shape : resolved_.shapes) {
      if (auto holder = locks_->try_lock(shape)) {
        throw UsageError("table " + shape.display_name() + " is being rotated by another rekey: " + *holder);
      }
    }
    settings_.still_locked = [this] { return locks_->still_held(); };
    report_.run_id = open_run(*store_, o_, targets_id_, *keyring_);
    writer_settings_.run_id = report_.run_id;
  }

  std::unique_ptr<TableWriter> open_writer(const TableShape& shape, TableReport& table,
                                           std::optional<KeyValues>& start_after, std::int64_t& seen_before) {
    if (!store_) return std::make_unique<DryRunWriter>(shape.display_name(), shape.columns, report_.failures);
    const db::TableProgress progress = store_->start_table(report_.run_id, shape);
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
    settings_.failures_before = store_->failure_count(report_.run_id);
    settings_.open_scan = [this, &shape] {
      return std::make_unique<db::PgRowScanner>(conninfo_, shape, db::ScanSettings{});
    };
    return std::make_unique<db::PgTableWriter>(conninfo_, shape, writer_settings_, table.counts);
  }

  void rotate_one(const TableShape& shape) {
    report_.tables.push_back({shape.display_name(), shape.columns, std::vector<ColumnCounts>(shape.columns.size())});
    TableReport& table = report_.tables.back();
    std::optional<KeyValues> start_after;
    std::int64_t seen_before = 0;
    const std::unique_ptr<TableWriter> writer = open_writer(shape, table, start_after, seen_before);
    if (stop_.should_stop()) {
      all_completed_ = false;
      return;
    }
    db::PgTableReader reader(conninfo_, shape);
    ProgressReporter progress(style_, shape.display_name(), seen_before,
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
    const TableOutcome outcome = rotate_table(shape, *keyring_, reader, *writer, start_after, settings_, stop_,
                                              [&](const TableOutcome& so_far, double seconds) {
                                                progress.update(so_far.rows_seen, seconds);
                                                absorb(so_far);
                                                note_time();
                                                metrics_.update(report_, false);
                                              });
    progress.finish(outcome.rows_seen, elapsed());
    absorb(outcome);
    table.completed = outcome.completed;
    for (const auto& [reason, n] : outcome.failure_reasons) failure_reasons_[reason] += n;
    log::debug("{}: {:.2f}s reading, {:.2f}s re-encrypting (all threads), {:.2f}s writing, {} batches",
               shape.display_name(), outcome.read_seconds, outcome.crypto_seconds, outcome.write_seconds,
               outcome.batches);
    if (outcome.completed && store_) store_->mark_table_done(report_.run_id, shape.display_name());
    if (!outcome.completed) all_completed_ = false;
    if (outcome.pending_left > 0) {
      log::warn("{}: {} row(s) kept changing under rekey; rerun to finish them", shape.display_name(),
                outcome.pending_left);
    }
  }

  void note_time() {
    report_.duration_seconds = elapsed();
    report_.seconds_paused = throttle_.seconds_paused();
    report_.seconds_throttled = throttle_.seconds_throttled();
  }

  // What rotate could not reach, and the exit code of it all.
  void account() {
    if (!stop_.should_stop()) report_.uncovered = census_uncovered(conninfo_, resolved_, *keyring_, o_, stop_);
    note_time();
    report_.stop_reason = to_string(stop_.reason());
    const std::int64_t recorded_failures = store_ ? store_->failure_count(report_.run_id) : 0;
    report_.exit_code =
        to_int(exit_code_for(rotate_outcome(report_, stop_.reason(), all_completed_, recorded_failures)));
    report_.status =
        stop_.reason() != StopReason::kNone || !all_completed_ ? db::RunStatus::kStopped : db::RunStatus::kFinished;
  }

  void publish() {
    if (store_) {
      try {
        store_->set_status(report_.run_id, report_.status, report_.exit_code);
        for (const auto& f : store_->failures(report_.run_id, 1000)) {
          report_.failures.push_back({{"table", f.table_name},
                                      {"column", f.column_name},
                                      {"primary_key", log::json_text(f.primary_key)},
                                      {"reason", f.reason}});
        }
      } catch (const std::exception& e) {
        // The data and its checkpoints are committed; only the run's summary row is stale.
        log::warn("could not record the run's status: {}", db::error_summary(e));
      }
    }
    publish_files(report_.status == db::RunStatus::kStopped ? "run_stop" : "run_finish", nlohmann::json::object());
    print_rotate_summary(report_, o_.dry_run);
  }

  void publish_files(const std::string& event, const nlohmann::json& extra) {
    metrics_.update(report_, true);
    nlohmann::json fields = {{"command", "rotate"},
                             {"run_id", report_.run_id},
                             {"dry_run", o_.dry_run},
                             {"status", db::to_string(report_.status)},
                             {"exit_code", report_.exit_code},
                             {"stop_reason", report_.stop_reason},
                             {"duration_seconds", report_.duration_seconds},
                             {"new_key_fingerprint", report_.new_key_fingerprint},
                             {"old_key_fingerprints", report_.old_key_fingerprints},
                             {"counts", counts_json(report_)},
                             {"failures_by_reason", failure_reasons_}};
    fields.update(extra);
    audit_.record(event, fields);
    if (!o_.report.empty()) write_json_file(o_.report, to_json(report_));
  }

  // Best effort, never masking `error`: the run's row says `failed` (on a
  // fresh connection: the error may have been the old one's), and the report
  // and audit log say what happened. Committed data and checkpoints stand;
  // the next invocation resumes the run.
  void record_failure(const std::exception& error) noexcept {
    try {
      note_time();
      report_.status = db::RunStatus::kFailed;
      report_.stop_reason = "error";
      report_.exit_code = to_int(exit_code_for(error));
      report_.error = log::without_hidden(db::error_summary(error));
      if (store_) mark_failed();
      publish_files("run_stop", {{"error", report_.error}});
    } catch (const std::exception& e) {
      log::error("could not record the run's failure: {}", db::error_summary(e));
    }
  }

  void mark_failed() {
    try {
      db::StateStore(conninfo_, o_.state_schema).set_status(report_.run_id, report_.status, report_.exit_code);
    } catch (const std::exception& e) {
      log::error("run {} could not be marked failed ({}); it stays `running` until resumed", report_.run_id,
                 db::error_summary(e));
    }
  }

  const RotateOptions& o_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  StopControl stop_;
  const std::string conninfo_;
  std::unique_ptr<crypto::Keyring> keyring_;
  AuditLog audit_;
  MetricsFile metrics_;
  db::ReplicaLagProbe lag_probe_;
  Throttle throttle_;
  EngineSettings settings_;
  db::WriterSettings writer_settings_;
  RotationTargets resolved_;
  std::string targets_id_;
  std::unique_ptr<db::StateStore> store_;
  std::unique_ptr<db::TableLocks> locks_;
  RunReport report_;
  bool all_completed_ = true;
  std::map<std::string, std::int64_t> failure_reasons_;
  const ProgressStyle style_ = default_progress_style(!log::enabled(log::Level::kInfo));
};

}  // namespace

int run_rotate(const RotateOptions& o) { return RotateRun(o).run(); }

}  // namespace rekey
