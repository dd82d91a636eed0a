#include "cli/status_command.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "cli/cli_choices.h"
#include "cli/db_options.h"
#include "cli/verify_command.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"
#include "db/health_probe.h"
#include "db/state_schema_name.h"
#include "db/state_store.h"
#include "db/work_units.h"
#include "migrate/pace.h"

namespace rekey {
namespace {

enum class OutputFormat { kTable, kJson };

struct StatusOptions {
  DbOption db;
  std::int64_t run_id = 0;
  std::size_t limit = 10;
  std::string state_schema = db::kDefaultStateSchema;
  std::size_t failures = 50;
  OutputFormat format = OutputFormat::kTable;
};

// The run's work units by status, and the workers holding units now.
nlohmann::json units_json(const std::string& conninfo, const std::string& schema, std::int64_t run_id) {
  db::WorkUnits units(conninfo, schema, run_id, db::Claimant{});
  if (!units.table_exists()) {
    return {{"done", 0},
            {"running", 0},
            {"left", 0},
            {"workers", nlohmann::json::array()},
            {"paces", nlohmann::json::array()}};
  }
  const db::UnitTally tally = units.tally();
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : units.leases()) {
    workers.push_back({{"worker", w.worker},
                       {"table", w.table_name},
                       {"unit", db::kind_name(w.kind)},
                       {"chunk", w.chunk},
                       {"rows_seen", w.rows_seen},
                       {"rows_per_second", w.seconds_held > 0 ? static_cast<double>(w.rows_seen) / w.seconds_held : 0},
                       {"lease_age_seconds", w.lease_age_seconds}});
  }
  nlohmann::json paces = nlohmann::json::array();
  for (const auto& p : db::worker_paces(conninfo, schema, run_id)) {
    paces.push_back({{"worker", p.worker},
                     {"rows_per_second", p.rate ? nlohmann::json(*p.rate) : nlohmann::json(nullptr)},
                     {"paused", p.paused ? nlohmann::json(*p.paused) : nlohmann::json(nullptr)},
                     {"reason", p.reason},
                     {"probe_ms", p.probe_ms},
                     {"probe_baseline_ms", p.baseline_ms},
                     {"age_seconds", p.age_seconds}});
  }
  return {
      {"done", tally.done}, {"running", tally.running}, {"left", tally.todo}, {"workers", workers}, {"paces", paces}};
}

void print_units(const nlohmann::json& u) {
  if (u["done"].get<std::int64_t>() + u["running"].get<std::int64_t>() + u["left"].get<std::int64_t>() == 0) return;
  std::printf(
      "  work units: %lld done, %lld running, %lld left\n", static_cast<long long>(u["done"].get<std::int64_t>()),
      static_cast<long long>(u["running"].get<std::int64_t>()), static_cast<long long>(u["left"].get<std::int64_t>()));
  for (const auto& w : u["workers"]) {
    std::printf("  worker %s: %s %d of %s, %lld rows, %.0f rows/s, lease renewed %.1fs ago\n",
                log::printable(w["worker"].get<std::string>()).c_str(), w["unit"].get<std::string>().c_str(),
                w["chunk"].get<int>(), log::printable(w["table"].get<std::string>()).c_str(),
                static_cast<long long>(w["rows_seen"].get<std::int64_t>()), w["rows_per_second"].get<double>(),
                w["lease_age_seconds"].get<double>());
  }
  for (const auto& p : u["paces"]) {
    const std::string rate = p["paused"].is_string()
                                 ? "paused: " + p["paused"].get<std::string>()
                                 : rate_text(p["rows_per_second"].is_null() ? std::numeric_limits<double>::infinity()
                                                                            : p["rows_per_second"].get<double>());
    std::printf("  pace of %s: %s (%s); probe %.1f ms, baseline %.1f ms\n",
                log::printable(p["worker"].get<std::string>()).c_str(), log::printable(rate).c_str(),
                log::printable(p["reason"].get<std::string>()).c_str(), p["probe_ms"].get<double>(),
                p["probe_baseline_ms"].get<double>());
  }
}

// The rollbacks of `run`, each with its status and the rollback of it, if any.
nlohmann::json rollbacks_of(db::StateStore& store, const db::RunRecord& run) {
  nlohmann::json out = nlohmann::json::array();
  const std::vector<db::RunRecord> later = store.runs_after(run.id);
  for (const auto& rollback : later) {
    if (rollback.rollback_of != run.id) continue;
    nlohmann::json undone_by = nullptr;
    for (const auto& other : later) {
      if (other.rollback_of == rollback.id) undone_by = other.id;
    }
    out.push_back({{"run", rollback.id}, {"status", db::to_string(rollback.status)}, {"rolled_back_by", undone_by}});
  }
  return out;
}

// One run as shown: its recorded status, or "stopped (interrupted)" for a
// "running" run none of whose tables is locked by a runner any more.
nlohmann::json describe(db::StateStore& store, const std::string& conninfo, const db::RunRecord& run,
                        std::size_t failure_limit) {
  const std::vector<std::string> tables = target_tables(run.targets);
  const bool interrupted = run.status == db::RunStatus::kRunning && store.locked_tables(tables).empty();
  const bool resumable =
      run.status != db::RunStatus::kFinished && (run.status != db::RunStatus::kRunning || interrupted);
  const std::string state = interrupted ? "stopped (interrupted)" : db::to_string(run.status);
  nlohmann::json targets = nlohmann::json::array();
  std::istringstream lines(run.targets);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) targets.push_back(line);
  }
  nlohmann::json progress = nlohmann::json::array();
  for (const auto& p : store.progress(run.id)) {
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [column, c] : p.counts) counts[column] = nlohmann::json(c);
    double percent =
        p.done ? 100.0
        : p.estimated_rows > 0
            ? std::min(99.9, 100.0 * static_cast<double>(p.rows_seen) / static_cast<double>(p.estimated_rows))
            : 0.0;
    progress.push_back({{"table", p.table_name},
                        {"last_key", p.last_key ? nlohmann::json(key_display(*p.last_key)) : nlohmann::json(nullptr)},
                        {"rows_seen", p.rows_seen},
                        {"estimated_rows", p.estimated_rows},
                        {"percent", percent},
                        {"done", p.done},
                        {"counts", counts}});
  }
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : store.failures(run.id, failure_limit)) {
    failures.push_back(
        {{"table", f.table_name}, {"column", f.column_name}, {"primary_key", f.primary_key}, {"reason", f.reason}});
  }
  nlohmann::json j{{"id", run.id},
                   {"status", db::to_string(run.status)},
                   {"state", state},
                   {"targets", targets},
                   {"new_key_fingerprint", run.new_key_fingerprint},
                   {"old_key_fingerprints", run.old_key_fingerprints},
                   {"runner", run.runner},
                   {"started_at", run.started_at},
                   {"updated_at", run.updated_at},
                   {"finished_at", run.finished_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(run.finished_at)},
                   {"exit_code", run.exit_code ? nlohmann::json(*run.exit_code) : nlohmann::json(nullptr)},
                   {"command", run.command},
                   {"tables", progress},
                   {"units", units_json(conninfo, store.schema(), run.id)},
                   {"failure_count", store.failure_count(run.id)},
                   {"failures", failures}};
  j["resume_command"] = resumable ? nlohmann::json(resume_command(run.command)) : nlohmann::json(nullptr);
  j["rollback_of"] = run.rollback_of ? nlohmann::json(*run.rollback_of) : nlohmann::json(nullptr);
  j["rolled_back_by"] = rollbacks_of(store, run);
  return j;
}

void print_run(const nlohmann::json& r) {
  std::printf("run %lld: %s\n", static_cast<long long>(r["id"].get<std::int64_t>()),
              r["state"].get<std::string>().c_str());
  std::printf("  new key %s; old keys %s\n", r["new_key_fingerprint"].get<std::string>().c_str(),
              r["old_key_fingerprints"].get<std::string>().empty()
                  ? "(none)"
                  : r["old_key_fingerprints"].get<std::string>().c_str());
  std::printf("  started %s by %s; %s %s\n", r["started_at"].get<std::string>().c_str(),
              log::printable(r["runner"].get<std::string>()).c_str(), r["finished_at"].is_null() ? "updated" : "ended",
              (r["finished_at"].is_null() ? r["updated_at"] : r["finished_at"]).get<std::string>().c_str());
  if (!r["exit_code"].is_null()) std::printf("  exit code %d\n", r["exit_code"].get<int>());
  if (!r["rollback_of"].is_null()) {
    std::printf("  a rollback of run %lld (its values back to its old key)\n",
                static_cast<long long>(r["rollback_of"].get<std::int64_t>()));
  }
  for (const auto& by : r["rolled_back_by"]) {
    const std::string undone = by["rolled_back_by"].is_null() ? ""
                                                              : fmt::format(", itself rolled back by run {}",
                                                                            by["rolled_back_by"].get<std::int64_t>());
    std::printf("  rolled back by run %lld (%s%s)\n", static_cast<long long>(by["run"].get<std::int64_t>()),
                by["status"].get<std::string>().c_str(), undone.c_str());
  }
  std::printf("  targets:");
  for (const auto& t : r["targets"]) std::printf(" %s", log::printable(t.get<std::string>()).c_str());
  std::printf("\n");
  print_units(r["units"]);
  for (const auto& t : r["tables"]) {
    const auto estimated = t["estimated_rows"].get<std::int64_t>();
    const std::string of =
        estimated > 0 ? fmt::format(" of about {} ({:.1f}%)", estimated, t["percent"].get<double>()) : std::string();
    std::printf("  %s: %s, %lld rows%s, last key %s\n", log::printable(t["table"].get<std::string>()).c_str(),
                t["done"].get<bool>() ? "done" : "not done", static_cast<long long>(t["rows_seen"].get<std::int64_t>()),
                of.c_str(),
                t["last_key"].is_null() ? "(none)" : log::printable(t["last_key"].get<std::string>()).c_str());
    for (const auto& [column, c] : t["counts"].items()) {
      std::printf("    %s: rotated %lld, already new %lld, null %lld, undecryptable %lld, changed concurrently %lld\n",
                  log::printable(quote_ident_if_needed(column)).c_str(),
                  static_cast<long long>(c["rotated"].get<std::int64_t>()),
                  static_cast<long long>(c["already_new"].get<std::int64_t>()),
                  static_cast<long long>(c["null"].get<std::int64_t>()),
                  static_cast<long long>(c["undecryptable"].get<std::int64_t>()),
                  static_cast<long long>(c["changed_concurrently"].get<std::int64_t>()));
    }
  }
  const auto failure_count = r["failure_count"].get<std::int64_t>();
  if (failure_count > 0) {
    std::printf("  %lld value(s) could not be decrypted%s:\n", static_cast<long long>(failure_count),
                failure_count > static_cast<std::int64_t>(r["failures"].size()) ? " (first ones)" : "");
    for (const auto& f : r["failures"]) {
      std::printf("    %s primary key %s: %s\n",
                  log::printable(column_display(f["table"].get<std::string>(), f["column"].get<std::string>())).c_str(),
                  log::printable(f["primary_key"].get<std::string>()).c_str(), f["reason"].get<std::string>().c_str());
    }
  }
  if (!r["resume_command"].is_null()) {
    std::printf("  resume with the same keys (new key %s) set:\n    %s\n",
                r["new_key_fingerprint"].get<std::string>().c_str(),
                log::printable(r["resume_command"].get<std::string>()).c_str());
  }
}

int run_status(const StatusOptions& o) {
  force_read_only_sessions();
  const std::string conninfo = resolve_conninfo(o.db);
  db::StateStore store(conninfo, o.state_schema);
  nlohmann::json runs = nlohmann::json::array();
  if (store.schema_exists()) {
    if (o.run_id > 0) {
      const auto run = store.run(o.run_id);
      if (!run) throw UsageError("no run " + std::to_string(o.run_id) + " in state schema " + o.state_schema);
      runs.push_back(describe(store, conninfo, *run, o.failures));
    } else {
      for (const auto& run : store.runs(o.limit)) runs.push_back(describe(store, conninfo, run, o.failures));
    }
  }
  if (o.format == OutputFormat::kJson) {
    const nlohmann::json j{{"state_schema", o.state_schema}, {"runs", runs}};
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (runs.empty()) {
    std::printf("no runs yet (state schema %s has none)\n", quote_ident_if_needed(o.state_schema).c_str());
  } else {
    for (const auto& r : runs) print_run(r);
  }
  std::fflush(stdout);
  return to_int(ExitCode::kOk);
}

}  // namespace

std::vector<std::string> target_tables(const std::string& targets) {
  std::vector<std::string> out;
  std::istringstream lines(targets);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    std::vector<std::string> parts;
    try {
      parts = split_qualified_name(line);
    } catch (const std::invalid_argument&) {
      continue;
    }
    if (parts.size() != 3) continue;
    const std::string name = display_name(parts[0], parts[1]);
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

std::string resume_command(const std::string& recorded) {
  std::string out = recorded;
  const std::string flag = " --restart";
  for (std::size_t pos = out.find(flag); pos != std::string::npos; pos = out.find(flag, pos)) {
    const std::size_t end = pos + flag.size();
    if (end == out.size() || out[end] == ' ') {
      out.erase(pos, flag.size());
    } else {
      pos = end;
    }
  }
  return out;
}

void add_status_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<StatusOptions>();
  CLI::App* cmd = root.add_subcommand(
      "status",
      "Show rotation runs (latest first): state, per-table progress, failures, and how to resume a stopped run.\n"
      "Example: rekey status --run-id 3 --format json");
  add_db_option(*cmd, o->db);
  cmd->add_option("--run-id", o->run_id, "Show only this run")->check(CLI::PositiveNumber);
  cmd->add_option("--limit", o->limit, "Show at most this many runs")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--failures", o->failures, "Show at most this many failures per run")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  add_state_schema_option(*cmd, o->state_schema, "Schema of rekey's state tables");
  cmd->add_option("--format", o->format, "table or json (on stdout)")
      ->transform(
          choices(std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable}, {"json", OutputFormat::kJson}}));
  cmd->callback([o, &exit_code] { exit_code = run_status(*o); });
}

}  // namespace rekey
