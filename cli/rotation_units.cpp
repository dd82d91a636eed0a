#include "cli/rotation_units.h"

#include "common/errors.h"
#include "common/log.h"
#include "db/pg_row_scanner.h"
#include "db/pg_table_reader.h"

namespace rekey {
namespace {

std::vector<ColumnCounts> counts_by_column(const TableShape& shape,
                                           const std::vector<std::pair<std::string, ColumnCounts>>& counts) {
  std::vector<ColumnCounts> out(shape.columns.size());
  for (const auto& [column, c] : counts) {
    for (std::size_t i = 0; i < shape.columns.size(); ++i) {
      if (shape.columns[i] == column) out[i] = c;
    }
  }
  return out;
}

nlohmann::json finish_outcome(const TableOutcome& o) {
  return {{"completed", o.completed},
          {"pending_left", o.pending_left},
          {"pending_not_found", o.pending_not_found},
          {"swept", o.swept},
          {"old_values_keep_coming", o.old_values_keep_coming}};
}

// "worker (range 3 of public.accounts, 1200 rows)"; the run unit has no table.
std::string describe_held(const db::WorkerLease& w) {
  if (w.kind == db::UnitKind::kRun) return w.worker + " (the run's end: what rotate does not cover, the exit code)";
  return w.worker + " (" + db::kind_name(w.kind) + " " + std::to_string(w.chunk) + " of " + w.table_name + ", " +
         std::to_string(w.rows_seen) + " rows)";
}

}  // namespace

RotationUnits::RotationUnits(RotationUnitsSetup setup, StopControl& stop, ProgressReporter& progress)
    : setup_(std::move(setup)), stop_(stop), progress_(progress) {}

const TableShape& RotationUnits::shape_of(const std::string& table_name) const {
  for (const auto& s : setup_.shapes) {
    if (s.display_name() == table_name) return s;
  }
  throw UsageError("the run's work units name table " + table_name +
                   ", which these targets do not hold: run rekey with the run's own targets");
}

std::optional<nlohmann::json> RotationUnits::work(const db::WorkUnit& unit, std::size_t lane) {
  if (unit.kind == db::UnitKind::kRun) return setup_.finish_run();
  return rotate(unit, lane);
}

// A range's main pass, or a table's finish, under the unit's lease.
std::optional<nlohmann::json> RotationUnits::rotate(const db::WorkUnit& unit, std::size_t lane) {
  const TableShape& shape = shape_of(unit.table_name);
  EngineSettings settings = setup_.engine;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    settings.failures_before = setup_.failures_before + failures_;
  }
  settings.open_scan = [this, &shape] {
    return std::make_unique<db::PgRowScanner>(setup_.conninfo, shape, db::ScanSettings{});
  };
  db::PgTableReader reader(setup_.conninfo, shape);
  db::PgTableWriter writer(setup_.conninfo, shape, setup_.writer, counts_by_column(shape, unit.counts),
                           db::UnitLease{unit, setup_.claimant.name, setup_.claimant.lease});
  const bool range = unit.kind == db::UnitKind::kRange;
  const TableOutcome outcome =
      rotate_table(shape, *setup_.keyring, reader, writer, range ? unit.range : KeyRange{},
                   range ? TableStages::kMainPass : TableStages::kFinish, settings, stop_,
                   [&](const TableOutcome& so_far, double) { show_progress(so_far.rows_seen, lane); });
  account(shape, outcome, lane);
  log::debug("{} unit {} of {}: {} rows, {:.2f}s reading, {:.2f}s re-encrypting, {:.2f}s writing (lane {})",
             db::kind_name(unit.kind), unit.chunk, unit.table_name, outcome.rows_seen, outcome.read_seconds,
             outcome.crypto_seconds, outcome.write_seconds, lane);
  if (stop_.should_stop() && !outcome.completed) return std::nullopt;
  if (range) return nlohmann::json{{"rows_seen", outcome.rows_seen}};
  if (!outcome.completed) {
    // Given back, and this worker stops (exit 75): a rerun finishes the table.
    if (outcome.pending_left > 0) {
      log::warn("{}: {} row(s) kept changing under rekey; rerun to finish them", unit.table_name, outcome.pending_left);
    }
    stop_.request(StopReason::kUnsettled);
    return std::nullopt;
  }
  return finish_outcome(outcome);
}

void RotationUnits::account(const TableShape& shape, const TableOutcome& outcome, std::size_t lane) {
  const std::lock_guard<std::mutex> lock(mutex_);
  TableReport& t = tables_[shape.display_name()];
  if (t.table.empty()) t = table_report(shape);
  for (std::size_t c = 0; c < t.counts.size() && c < outcome.counts.size(); ++c) t.counts[c] += outcome.counts[c];
  t.rows_seen += outcome.rows_seen;
  t.retries += outcome.retries;
  t.batches += outcome.batches;
  rows_done_ += outcome.rows_seen;
  rows_in_unit_[lane] = 0;
  for (const auto& [reason, n] : outcome.failure_reasons) {
    failure_reasons_[reason] += n;
    failures_ += n;
  }
  if (setup_.on_unit_done) {
    std::vector<TableReport> so_far;
    for (const auto& [name, table] : tables_) so_far.push_back(table);
    setup_.on_unit_done(so_far);
  }
}

void RotationUnits::show_progress(std::int64_t unit_rows, std::size_t lane) {
  const std::lock_guard<std::mutex> lock(mutex_);
  rows_in_unit_[lane] = unit_rows;
  std::int64_t rows = rows_done_;
  for (const auto& [l, n] : rows_in_unit_) rows += n;
  progress_.update(rows, std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
}

void RotationUnits::waiting(const std::vector<db::WorkerLease>& others) {
  std::string held;
  for (const auto& w : others) held += (held.empty() ? "" : ", ") + describe_held(w);
  log::info("nothing left to claim; waiting for the units still held: {}", held.empty() ? "none" : held);
}

std::map<std::string, std::int64_t> RotationUnits::failure_reasons() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return failure_reasons_;
}

void RotationUnits::add_to(RunReport& report) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (auto& t : report.tables) {
    if (auto it = tables_.find(t.table); it != tables_.end()) {
      t.retries = it->second.retries;
      t.batches = it->second.batches;
    }
  }
}

std::int64_t RotationUnits::rows_seen() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return rows_done_;
}

}  // namespace rekey
