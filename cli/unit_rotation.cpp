#include "cli/unit_rotation.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <random>
#include <thread>

#include "cli/db_options.h"
#include "db/health_probe.h"
#include "db/unit_plan.h"

namespace rekey {
namespace {

constexpr std::size_t kChunksPerLane = 4;
constexpr std::size_t kMaxAutomaticLanes = 8;

}  // namespace

db::Claimant make_claimant(const WorkerSettings& workers) {
  db::Claimant c;
  c.name = workers.name.empty() ? host_name() + ":" + std::to_string(::getpid()) : workers.name;
  std::random_device random;
  c.liveness_token = static_cast<std::int32_t>(std::uniform_int_distribution<std::int32_t>(1, INT32_MAX)(random));
  c.lease = workers.lease;
  return c;
}

LaneSettings lane_settings(const WorkerSettings& workers, const RetryPolicy& retry) {
  LaneSettings s;
  s.lanes = workers.lanes > 0 ? workers.lanes
                              : std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, kMaxAutomaticLanes);
  s.when_nothing_left = workers.when_nothing_left;
  s.retry = retry;
  return s;
}

EngineSettings lane_engine(const EngineSettings& process, std::size_t lanes) {
  EngineSettings lane = process;
  lane.batch_bytes = std::max<std::size_t>(1, process.batch_bytes / std::max<std::size_t>(1, lanes));
  lane.threads = std::max<std::size_t>(1, process.threads / std::max<std::size_t>(1, lanes));
  return lane;
}

void plan_units(db::StateStore& store, const std::string& conninfo, std::int64_t run_id, const db::Claimant& claimant,
                const std::vector<TableShape>& shapes, const WorkerSettings& workers) {
  db::WorkUnits units(conninfo, store.schema(), run_id, claimant);
  if (units.planned()) {
    if (workers.share == db::LockShare::kAlone) units.reopen_finishes();
    return;
  }
  std::vector<db::PlanTarget> targets;
  for (const auto& shape : shapes) targets.push_back({shape, store.start_table(run_id, shape)});
  const std::size_t lanes = std::max<std::size_t>(2, lane_settings(workers, RetryPolicy{}).lanes);
  units.plan(db::plan_units(conninfo, targets, workers.chunk_rows, kChunksPerLane * lanes));
}

std::string busy_table_message(db::StateStore& store, const std::string& conninfo, const std::string& schema,
                               const TableShape& shape, const std::string& holder) {
  std::string runs;
  for (const auto& run : store.unfinished_runs()) {
    if (run.status != db::RunStatus::kRunning) continue;
    std::string workers;
    for (const auto& lease : db::WorkUnits(conninfo, schema, run.id, db::Claimant{}).leases()) {
      if (workers.find(lease.worker) == std::string::npos) workers += (workers.empty() ? "" : ", ") + lease.worker;
    }
    runs +=
        "; run " + std::to_string(run.id) + " is running (workers: " + (workers.empty() ? "none now" : workers) + ")";
  }
  return "table " + shape.display_name() + " is being rotated by another rekey: " + holder + runs +
         ". To work on the same run from here too, give the same targets and new key with --join";
}

RunSize run_size(db::StateStore& store, std::int64_t run_id) {
  RunSize size;
  for (const auto& p : store.progress(run_id)) {
    size.rows_seen += p.rows_seen;
    size.estimated_rows += p.estimated_rows;
  }
  return size;
}

void load_tables(db::StateStore& store, db::WorkUnits& units, std::int64_t run_id,
                 const std::vector<TableShape>& shapes, RunReport& report, bool& all_completed) {
  std::map<std::string, nlohmann::json> finished;
  for (auto& [table, outcome] : units.finish_outcomes()) finished[table] = std::move(outcome);
  std::map<std::string, db::TableProgress> progress;
  for (auto& p : store.progress(run_id)) progress[p.table_name] = std::move(p);
  report.tables.clear();
  all_completed = true;
  for (const auto& shape : shapes) {
    TableReport t = table_report(shape);
    const db::TableProgress& p = progress[t.table];
    t.rows_seen = p.rows_seen;
    for (const auto& [column, counts] : p.counts) {
      for (std::size_t c = 0; c < shape.columns.size(); ++c) {
        if (shape.columns[c] == column) t.counts[c] = counts;
      }
    }
    const nlohmann::json& f = finished[t.table];
    t.completed = f.is_object() && f.value("completed", false);
    t.swept = f.is_object() ? f.value("swept", std::int64_t{0}) : 0;
    t.pending_not_found = f.is_object() ? f.value("pending_not_found", std::int64_t{0}) : 0;
    all_completed = all_completed && t.completed;
    report.tables.push_back(std::move(t));
  }
}

std::unique_ptr<PaceKeeper> start_pace(const RotateSettings& s, const std::string& conninfo, std::int64_t run_id,
                                       const std::string& worker, const std::vector<TableShape>& shapes,
                                       Throttle& throttle) {
  if (s.pace != PaceMode::kAuto) return nullptr;
  auto probe = std::make_shared<db::HealthProbe>(conninfo, s.writer.state_schema, run_id, worker, shapes);
  PaceSettings settings;
  settings.ceiling = s.throttle.max_rate;
  return std::make_unique<PaceKeeper>(
      [probe](const Pace& pace, double baseline_ms) { return probe->sample(pace, baseline_ms); }, throttle, settings);
}

void note_pacing(RunReport& report, const Throttle& throttle, const PaceKeeper* pace) {
  report.seconds_paused = throttle.seconds_paused();
  report.seconds_paused_by = throttle.seconds_paused_by();
  report.seconds_throttled = throttle.seconds_throttled();
  if (pace != nullptr) report.pace = pace->report();
}

CensusSettings census_settings(const EngineSettings& engine) {
  CensusSettings census;
  census.threads = engine.threads;
  census.batch_bytes = engine.batch_bytes;
  return census;
}

}  // namespace rekey
