// The database's health for --pace auto (migrate/pace.h), as one worker sees
// it: a probe that reads a row of a target table by its primary key and writes
// this worker's pace to the state schema (table `pace`, which `rekey status`
// shows), timed end to end like an application's transaction; and the
// server's own signals (pg_stat_activity, WAL position, forced checkpoints,
// standbys, anti-wraparound vacuums on the targets).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <random>
#include <string>
#include <vector>

#include "migrate/pace.h"
#include "migrate/table_port.h"

namespace rekey::db {

class HealthProbe {
 public:
  // Owns a connection; use from one thread at a time. Connects on first use.
  HealthProbe(std::string conninfo, std::string state_schema, std::int64_t run_id, std::string worker,
              std::vector<TableShape> targets);
  ~HealthProbe();

  // One sample, writing `pace` as this worker's. Throws pqxx errors (a lost
  // connection is opened again at the next call).
  HealthSample sample(const Pace& pace, double baseline_ms);

 private:
  pqxx::connection& open();
  // Keys of rows of target number `target` (a few, from a sample of its
  // pages), sampled the first time that target is probed.
  const std::vector<KeyValues>& keys_of(pqxx::connection& conn, std::size_t target);
  // The probe's read: a random sampled key of a random target.
  void read_a_row(pqxx::connection& conn);
  void write_pace(pqxx::connection& conn, const Pace& pace, double probe_ms, double baseline_ms);
  void read_signals(pqxx::connection& conn, HealthSample& sample);

  std::string conninfo_;
  std::string state_schema_;
  std::int64_t run_id_;
  std::string worker_;
  std::vector<TableShape> targets_;
  std::vector<std::optional<std::vector<KeyValues>>> keys_;  // by target; nullopt until keys_of() samples them
  std::string target_names_;                                 // a text[] literal of the targets' qualified names
  std::mt19937_64 rng_{std::random_device{}()};
  double last_probe_ms_ = 0;
  std::unique_ptr<pqxx::connection> conn_;
};

// A worker's pace as its probe last wrote it (table `pace`), for `status`.
struct WorkerPace {
  std::string worker;
  std::optional<double> rate;  // rows/s; nullopt: no limit
  std::optional<std::string> paused;
  std::string reason;
  double probe_ms = 0;
  double baseline_ms = 0;
  double age_seconds = 0;  // since it was written
};

// The paces of run `run_id`'s workers written in the last minute (none when
// the state schema has no `pace` table: an older rekey's). Read only.
std::vector<WorkerPace> worker_paces(const std::string& conninfo, const std::string& state_schema, std::int64_t run_id);

}  // namespace rekey::db
