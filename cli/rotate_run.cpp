#include <map>
#include <memory>
#include <mutex>

#include "cli/audit_log.h"
#include "cli/db_options.h"
#include "cli/dry_run_writer.h"
#include "cli/exit_code.h"
#include "cli/key_source.h"
#include "cli/lanes.h"
#include "cli/lease_keeper.h"
#include "cli/metrics_file.h"
#include "cli/progress.h"
#include "cli/relation_census.h"
#include "cli/rollback.h"
#include "cli/rotate_checks.h"
#include "cli/rotate_settings.h"
#include "cli/rotation_units.h"
#include "cli/run_report.h"
#include "cli/run_row.h"
#include "cli/target_resolver.h"
#include "cli/targets.h"
#include "cli/unit_rotation.h"
#include "common/errors.h"
#include "common/log.h"
#include "db/connection.h"
#include "db/pg_table_reader.h"
#include "db/pg_table_writer.h"
#include "db/replica_lag.h"
#include "db/state_store.h"
#include "db/table_lock.h"
#include "migrate/rotation_engine.h"
#include "migrate/throttle.h"

namespace rekey {
namespace {

// One invocation of `rekey rotate`, in named stages: open (keys, targets,
// state, locks, the run's row), rotate each table, account (what rotate could
// not reach, the exit code), publish (state, metrics, audit, summary, report).
// A run that ends in an error once its row exists is recorded as `failed`,
// with its report and an audit `run_stop`, and the error propagates.
// Single-threaded; owns every connection it opens.
class RotateRun {
 public:
  explicit RotateRun(const RotateSettings& s)
      : s_(s),
        conninfo_(resolve_conninfo(s.db)),
        audit_(s.audit_log),
        metrics_(s.metrics_file, s.rollback_of ? "rollback" : "rotate"),
        lag_probe_(conninfo_),
        throttle_(s.throttle, s.engine.batch_size, [this] { return lag_probe_.read(); }) {
    install_signal_handlers(stop_);  // before key derivation: a signal at any point stops cleanly
    keyring_ = load_keyring(s.keys, OldKeyPolicy::kRequired, s.rollback_of ? KeyOrder::kRollback : KeyOrder::kAsGiven,
                            &report_.key_sources);
  }

  int run() {
    open();
    try {
      if (store_) {
        rotate_by_units();
      } else {
        for (const auto& shape : resolved_.shapes) dry_run_one(shape);
        account();
      }
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
    if (s_.max_duration) stop_.set_deadline(started_ + *s_.max_duration);
    settings_ = s_.engine;
    settings_.throttle = &throttle_;
    writer_settings_ = s_.writer;
    writer_settings_.triggers = trigger_mode(s_.disable_triggers, conninfo_);
    if (!s_.dry_run) refuse_read_only_server(conninfo_);
    if (s_.rollback_of) rolled_back_ = check_rollback(conninfo_, s_.writer.state_schema, *s_.rollback_of, *keyring_);
    scope_ = s_.rollback_of ? rolled_back_.scope : db::RunScope{s_.columns, s_.discover, s_.exclude};
    resolved_ = resolve_targets(conninfo_, scope_.columns, scope_.discover, s_.writer.state_schema, scope_.exclude);
    if (s_.rollback_of) keep_rolled_back_columns(resolved_, rolled_back_);
    refuse_missing_privileges(conninfo_, resolved_.shapes);
    if (s_.throttle.max_replica_lag) {
      if (auto unreadable = lag_probe_.start()) throw UsageError("--max-replica-lag: " + *unreadable);
    }
    targets_id_ = targets_key(resolved_.shapes);
    report_.rollback_of = s_.rollback_of;
    report_.dry_run = s_.dry_run;
    report_.status = db::RunStatus::kRunning;
    report_.new_key_fingerprint = keyring_->new_key().fingerprint();
    for (std::size_t i = 0; i < keyring_->old_key_count(); ++i) {
      report_.old_key_fingerprints.push_back(keyring_->old_key(i).fingerprint());
    }
    report_.unchecked = resolved_.unchecked;
    report_.excluded = resolved_.excluded;
    refuse_unwritable_report(s_.report);
    if (!s_.dry_run) open_state();
    audit_.record("run_start", run_start_event(report_, command_name(), targets_id_));
  }

  // The state schema, one lock per table, and the run's row (new, resumed
  // or joined); the run stays locked for opening until its units are planned.
  void open_state() {
    store_ = std::make_unique<db::StateStore>(conninfo_, s_.writer.state_schema);
    store_->ensure_schema();
    locks_ = std::make_unique<db::TableLocks>(conninfo_);
    for (const auto& shape : resolved_.shapes) {
      if (auto holder = locks_->try_lock(shape, s_.workers.share)) {
        throw UsageError(busy_table_message(*store_, conninfo_, s_.writer.state_schema, shape, *holder));
      }
    }
    settings_.still_locked = [this] {
      const std::lock_guard<std::mutex> lock(locks_mutex_);
      return locks_->still_held();
    };
    locks_->lock_run_opening(s_.writer.state_schema);
    if (s_.rollback_of) recheck_rollback(*store_, rolled_back_, s_.workers.share);
    report_.run_id =
        open_run(*store_, targets_id_, *keyring_, RunOpening{s_.restart, s_.workers.share, scope_, s_.rollback_of});
    writer_settings_.run_id = report_.run_id;
  }

  // This process's lanes on the run's units, planned first when nobody has.
  void rotate_by_units() {
    const db::Claimant claimant = make_claimant(s_.workers);
    locks_->hold_worker_lock(claimant.liveness_token);
    plan_units(*store_, conninfo_, report_.run_id, claimant, resolved_.shapes, s_.workers);
    locks_->unlock_run_opening(s_.writer.state_schema);
    const RunSize size = run_size(*store_, report_.run_id);
    ProgressReporter progress(style_, "run " + std::to_string(report_.run_id), size.rows_seen, size.estimated_rows);
    pace_ = start_pace(s_, conninfo_, report_.run_id, claimant.name, resolved_.shapes, throttle_);
    if (pace_) progress.follow_pace([this] { return pace_->shown(); });
    const LaneSettings lanes = lane_settings(s_.workers, s_.engine.retry);
    const EngineSettings per_lane = lane_engine(settings_, lanes.lanes);
    RotationUnitsSetup setup{conninfo_,
                             keyring_.get(),
                             resolved_.shapes,
                             per_lane,
                             writer_settings_,
                             claimant,
                             store_->failure_count(report_.run_id),
                             [this] { return finish_run(); },
                             [this](const std::vector<TableReport>& so_far) { show_metrics(so_far); }};
    RotationUnits work(std::move(setup), stop_, progress);
    LeaseKeeper keeper(conninfo_, s_.writer.state_schema, report_.run_id, claimant);
    const bool all_done = run_lanes(
        lanes, [&] { return open_units(claimant); }, work, keeper, stop_);
    progress.finish(work.rows_seen(), elapsed());
    note_time();
    pace_.reset();  // its report stays in report_
    failure_reasons_ = work.failure_reasons();
    conclude(all_done);
    work.add_to(report_);
  }

  // --metrics-file while the lanes work (called by them, one at a time): this process's tables so far.
  void show_metrics(const std::vector<TableReport>& so_far) {
    RunReport live;
    live.run_id = report_.run_id;
    live.status = db::RunStatus::kRunning;
    live.new_key_fingerprint = report_.new_key_fingerprint;
    live.old_key_fingerprints = report_.old_key_fingerprints;
    live.tables = so_far;
    live.duration_seconds = elapsed();
    note_pacing(live, throttle_, pace_.get());
    metrics_.update(live, false);
  }

  std::unique_ptr<db::WorkUnits> open_units(const db::Claimant& claimant) const {
    return std::make_unique<db::WorkUnits>(conninfo_, s_.writer.state_schema, report_.run_id, claimant);
  }

  // The run's own unit, by the one worker that claims it once every table is
  // finished: the run's totals, what rotate does not cover, the exit code
  // (recorded with the unit, fenced by its lease); nullopt when stopped first.
  std::optional<nlohmann::json> finish_run() {
    load_tables(*store_, *open_units(db::Claimant{}), report_.run_id, resolved_.shapes, report_, all_completed_);
    account();
    if (stop_.should_stop()) return std::nullopt;
    return nlohmann::json{{"status", db::to_string(report_.status)}, {"exit_code", report_.exit_code}};
  }

  // What this worker reports: the run's outcome once it is done (whoever
  // finished it), else a stop (75) that the next worker, or a rerun, resumes.
  void conclude(bool all_done) {
    const std::unique_ptr<db::WorkUnits> units = open_units(db::Claimant{});
    load_tables(*store_, *units, report_.run_id, resolved_.shapes, report_, all_completed_);
    note_time();
    const auto run = store_->run(report_.run_id);
    if (all_done && run && run->exit_code) {
      report_.exit_code = *run->exit_code;
      report_.status = run->status;
      report_.stop_reason = to_string(StopReason::kNone);
      return;
    }
    report_.stop_reason = stop_.reason() == StopReason::kNone ? "no_wait" : to_string(stop_.reason());
    report_.exit_code =
        to_int(exit_code_for(rotate_outcome(report_, stop_.reason(), false, store_->failure_count(report_.run_id))));
    report_.status = db::RunStatus::kStopped;
    // Unless others still work on it, or it ended meanwhile.
    if (!units->end_run(report_.status, report_.exit_code)) {
      log::info("run {} goes on with its other workers (rekey status shows them)", report_.run_id);
    }
  }

  // --dry-run: one table read, re-encrypted and checked in memory; no state, no lanes.
  void dry_run_one(const TableShape& shape) {
    report_.tables.push_back(table_report(shape));
    TableReport& table = report_.tables.back();
    DryRunWriter writer(shape.display_name(), shape.columns, report_.failures);
    if (stop_.should_stop()) {
      all_completed_ = false;
      return;
    }
    db::PgTableReader reader(conninfo_, shape);
    ProgressReporter progress(style_, shape.display_name(), 0, static_cast<std::int64_t>(shape.estimated_rows));
    const auto absorb = [&](const TableOutcome& so_far) {
      table.counts = so_far.counts;
      table.rows_seen = so_far.rows_seen;
      table.retries = so_far.retries;
      table.batches = so_far.batches;
    };
    const TableOutcome outcome = rotate_table(shape, *keyring_, reader, writer, KeyRange{}, TableStages::kAll,
                                              settings_, stop_, [&](const TableOutcome& so_far, double seconds) {
                                                progress.update(so_far.rows_seen, seconds);
                                                absorb(so_far);
                                                note_time();
                                                metrics_.update(report_, false);
                                              });
    progress.finish(outcome.rows_seen, elapsed());
    absorb(outcome);
    table.completed = outcome.completed;
    for (const auto& [reason, n] : outcome.failure_reasons) failure_reasons_[reason] += n;
    if (!outcome.completed) all_completed_ = false;
  }

  void note_time() {
    report_.duration_seconds = elapsed();
    note_pacing(report_, throttle_, pace_.get());
  }

  // What rotate could not reach, and the exit code of it all.
  void account() {
    if (!stop_.should_stop())
      report_.uncovered = census_uncovered(conninfo_, resolved_, *keyring_, census_settings(s_.engine), stop_);
    note_time();
    report_.stop_reason = to_string(stop_.reason());
    const std::int64_t recorded_failures = store_ ? store_->failure_count(report_.run_id) : 0;
    report_.exit_code =
        to_int(exit_code_for(rotate_outcome(report_, stop_.reason(), all_completed_, recorded_failures)));
    report_.status =
        stop_.reason() != StopReason::kNone || !all_completed_ ? db::RunStatus::kStopped : db::RunStatus::kFinished;
  }

  void publish() {
    if (store_) add_recorded_failures(report_, *store_);
    publish_files(report_.status == db::RunStatus::kStopped ? "run_stop" : "run_finish", nlohmann::json::object());
    print_rotate_summary(report_, s_.dry_run);
  }

  void publish_files(const std::string& event, const nlohmann::json& extra) {
    metrics_.update(report_, true);
    nlohmann::json fields = {{"command", command_name()},
                             {"run_id", report_.run_id},
                             {"dry_run", s_.dry_run},
                             {"status", db::to_string(report_.status)},
                             {"exit_code", report_.exit_code},
                             {"stop_reason", report_.stop_reason},
                             {"duration_seconds", report_.duration_seconds},
                             {"new_key_fingerprint", report_.new_key_fingerprint},
                             {"old_key_fingerprints", report_.old_key_fingerprints},
                             {"counts", counts_by_table(report_)},
                             {"failures_by_reason", failure_reasons_}};
    fields.update(extra);
    audit_.record(event, fields);
    if (!s_.report.empty()) write_json_file(s_.report, to_json(report_));
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
      if (report_.run_id > 0) open_units(db::Claimant{})->end_run(report_.status, report_.exit_code);
    } catch (const std::exception& e) {
      log::error("run {} could not be marked failed ({}); it stays `running` until resumed", report_.run_id,
                 db::error_summary(e));
    }
  }

  const char* command_name() const { return s_.rollback_of ? "rollback" : "rotate"; }

  const RotateSettings& s_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  StopControl stop_;
  const std::string conninfo_;
  std::unique_ptr<crypto::Keyring> keyring_;
  AuditLog audit_;
  MetricsFile metrics_;
  db::ReplicaLagProbe lag_probe_;
  Throttle throttle_;
  std::unique_ptr<PaceKeeper> pace_;  // --pace auto, while the lanes work
  EngineSettings settings_;
  db::WriterSettings writer_settings_;
  RolledBackRun rolled_back_;  // rollback: the run it takes back
  db::RunScope scope_;         // what to resolve: the options', or the rolled-back run's
  RotationTargets resolved_;
  std::string targets_id_;
  std::unique_ptr<db::StateStore> store_;
  std::unique_ptr<db::TableLocks> locks_;
  RunReport report_;
  bool all_completed_ = true;
  std::mutex locks_mutex_;  // guards locks_ (lanes check their lock from their threads)
  std::map<std::string, std::int64_t> failure_reasons_;
  const ProgressStyle style_ = default_progress_style(!log::enabled(log::Level::kInfo));
};

}  // namespace

int run_rotate(const RotateSettings& s) { return RotateRun(s).run(); }

}  // namespace rekey
