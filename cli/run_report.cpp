#include "cli/run_report.h"

#include <cmath>
#include <cstdio>

#include "cli/db_options.h"
#include "common/atomic_file.h"
#include "common/identifier.h"
#include "common/log.h"

namespace rekey {
namespace {

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

}  // namespace

nlohmann::json failure_json(const std::string& table, const std::string& column, const std::string& primary_key,
                            const std::string& reason) {
  return {{"table", table}, {"column", column}, {"primary_key", log::json_text(primary_key)}, {"reason", reason}};
}

nlohmann::json key_sources_json(const KeySources& sources) {
  return {{"new", sources.new_key}, {"old", sources.old_keys}};
}

nlohmann::json run_start_event(const RunReport& r, const std::string& command, const std::string& targets) {
  return {{"command", command},
          {"run_id", r.run_id},
          {"rollback_of", r.rollback_of.value_or(0)},
          {"dry_run", r.dry_run},
          {"targets", targets},
          {"new_key_fingerprint", r.new_key_fingerprint},
          {"old_key_fingerprints", r.old_key_fingerprints},
          {"key_sources", key_sources_json(r.key_sources)},
          {"command_line", command_line()}};
}

TableReport table_report(const TableShape& shape) {
  TableReport t{shape.display_name(), shape.columns, std::vector<ColumnCounts>(shape.columns.size())};
  t.estimated_rows = static_cast<std::int64_t>(shape.estimated_rows);
  return t;
}

void add_recorded_failures(RunReport& report, db::StateStore& store, std::size_t limit) {
  try {
    for (const auto& f : store.failures(report.run_id, limit)) {
      report.failures.push_back(failure_json(f.table_name, f.column_name, f.primary_key, f.reason));
    }
  } catch (const std::exception& e) {
    log::warn("could not list the run's failures for the report: {}", db::error_summary(e));
  }
}

namespace {

nlohmann::json rate_json(double rate) { return std::isinf(rate) ? nlohmann::json(nullptr) : nlohmann::json(rate); }

// The pace: its mode, where it is now and why, the probe's latencies, and
// each change (rows_per_second null: no limit; 0: paused).
nlohmann::json pace_json(const PaceReport& p) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& c : p.changes) {
    changes.push_back({{"at_seconds", c.at_s}, {"rows_per_second", rate_json(c.rate)}, {"reason", c.reason}});
  }
  return {{"mode", to_string(p.mode)},
          {"rows_per_second", rate_json(p.now.rate)},
          {"paused", p.now.paused ? nlohmann::json(*p.now.paused) : nlohmann::json(nullptr)},
          {"reason", p.now.reason},
          {"probe_baseline_ms", p.baseline_ms},
          {"probe_p95_ms", p.p95_ms},
          {"wal_bytes_per_second", p.wal_bytes_per_s},
          {"replica_lag_bytes", p.replica_lag_bytes},
          {"changes", changes}};
}

}  // namespace

nlohmann::json to_json(const RunReport& r) {
  std::int64_t rows = 0;
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& t : r.tables) {
    rows += t.rows_seen;
    nlohmann::json columns = nlohmann::json::array();
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
      nlohmann::json column = t.counts.at(c);
      column["column"] = t.columns[c];
      columns.push_back(std::move(column));
    }
    tables.push_back({{"table", t.table},
                      {"rows_seen", t.rows_seen},
                      {"retries", t.retries},
                      {"pending_not_found", t.pending_not_found},
                      {"swept", t.swept},
                      {"completed", t.completed},
                      {"columns", columns}});
  }
  nlohmann::json j{{"run_id", r.run_id},
                   {"dry_run", r.dry_run},
                   {"status", db::to_string(r.status)},
                   {"exit_code", r.exit_code},
                   {"stop_reason", r.stop_reason},
                   {"duration_seconds", r.duration_seconds},
                   {"seconds_paused", r.seconds_paused},
                   {"seconds_throttled", r.seconds_throttled},
                   {"seconds_paused_by", r.seconds_paused_by},
                   {"pace", pace_json(r.pace)},
                   {"rows_seen", rows},
                   {"rows_per_second", r.duration_seconds > 0 ? static_cast<double>(rows) / r.duration_seconds : 0.0},
                   {"new_key_fingerprint", r.new_key_fingerprint},
                   {"old_key_fingerprints", r.old_key_fingerprints},
                   {"tables", tables},
                   {"failures", r.failures},
                   {"unchecked", r.unchecked},
                   {"excluded", r.excluded}};
  if (!r.error.empty()) j["error"] = r.error;
  if (r.rollback_of) j["rollback_of"] = *r.rollback_of;
  j["key_sources"] = key_sources_json(r.key_sources);
  nlohmann::json uncovered = nlohmann::json::array();
  for (const auto& u : r.uncovered) {
    uncovered.push_back({{"column", u.column}, {"why", u.why}, {"values", u.values}, {"not_new", u.not_new}});
  }
  j["uncovered"] = uncovered;
  return j;
}

void print_rotate_summary(const RunReport& r, bool dry_run) {
  std::int64_t rows = 0;
  std::int64_t estimated = 0;
  for (const auto& t : r.tables) rows += t.rows_seen;
  const double rate = r.duration_seconds > 0 ? static_cast<double>(rows) / r.duration_seconds : 0.0;
  std::printf("%s%s\n", dry_run ? "DRY RUN: nothing was written. " : "",
              r.run_id > 0 ? ("run " + std::to_string(r.run_id) + ": " + db::to_string(r.status)).c_str()
                           : db::to_string(r.status));
  for (const auto& t : r.tables) {
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
      const ColumnCounts& k = t.counts[c];
      std::printf("  %s: %s %lld, already new %lld, null %lld, undecryptable %lld, changed concurrently %lld\n",
                  log::printable(column_display(t.table, t.columns[c])).c_str(), dry_run ? "would rotate" : "rotated",
                  static_cast<long long>(k.rotated), static_cast<long long>(k.already_new),
                  static_cast<long long>(k.null), static_cast<long long>(k.undecryptable),
                  static_cast<long long>(k.changed_concurrently));
      estimated += c == 0 ? k.rotated + k.already_new + k.null + k.undecryptable : 0;
    }
  }
  std::printf("  %lld rows in %.1fs (%.0f rows/s); new key %s\n", static_cast<long long>(rows), r.duration_seconds,
              rate, r.new_key_fingerprint.c_str());
  if (dry_run && rate > 0) {
    std::printf("  projected duration of the real run: at least %.1fs (writes add to the dry run's %.1fs)\n",
                static_cast<double>(estimated) / rate, r.duration_seconds);
  }
  for (const auto& t : r.tables) {
    if (t.swept > 0) {
      std::printf("  %s: the final sweep rotated %lld row(s) written under an old key behind the checkpoint\n",
                  log::printable(t.table).c_str(), static_cast<long long>(t.swept));
    }
    if (t.pending_not_found > 0) {
      std::printf("  %s: %lld row(s) that changed during the run were gone when read again (deleted, or key changed)\n",
                  log::printable(t.table).c_str(), static_cast<long long>(t.pending_not_found));
    }
  }
  for (const auto& u : r.uncovered) {
    std::printf("  NOT ROTATED %s: %lld value(s) with tokens, %lld not under the new key: %s\n",
                log::printable(u.column).c_str(), static_cast<long long>(u.values), static_cast<long long>(u.not_new),
                log::printable(u.why).c_str());
  }
  for (const auto& u : r.unchecked) {
    std::printf("  NOT CHECKED %s: %s\n", log::printable(u.at("object").get<std::string>()).c_str(),
                u.at("reason").get<std::string>().c_str());
  }
  for (const auto& e : r.excluded) std::printf("  excluded: %s\n", log::printable(e).c_str());
  if (!r.failures.empty()) {
    std::printf("  %zu value(s) could not be decrypted and were left untouched; see the report or `rekey status`\n",
                r.failures.size());
  }
  std::fflush(stdout);
}

nlohmann::json counts_by_table(const RunReport& report) {
  nlohmann::json tables = nlohmann::json::object();
  for (const auto& t : report.tables) {
    for (std::size_t c = 0; c < t.columns.size(); ++c) tables[t.table][t.columns[c]] = t.counts[c];
  }
  return tables;
}

RunOutcome rotate_outcome(const RunReport& report, StopReason stop, bool all_completed,
                          std::int64_t recorded_failures) {
  RunOutcome outcome;
  outcome.stopped = stop != StopReason::kMaxFailures && (stop != StopReason::kNone || !all_completed);
  outcome.found_failures = stop == StopReason::kMaxFailures || any_failure(report, recorded_failures);
  outcome.stop_defers_failures = true;
  return outcome;
}

void write_json_file(const std::string& path, const nlohmann::json& j) {
  write_file_atomically(path, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace rekey
