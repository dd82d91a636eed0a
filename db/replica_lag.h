// Standby replay lag as seen from the primary, for throttling. Fails closed:
// a lag that cannot be read, or a standby that went away, is never taken for
// "no lag".
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <string>

#include "migrate/throttle.h"

namespace rekey::db {

class ReplicaLagProbe {
 public:
  // Owns a connection; use from one thread at a time.
  explicit ReplicaLagProbe(std::string conninfo);
  ~ReplicaLagProbe();

  // Lists the standbys connected now (pg_stat_replication, base backups
  // aside): the ones every later read expects. Returns why the lag cannot be
  // read (the role lacks pg_read_all_stats, or the query failed), or nullopt.
  std::optional<std::string> start();

  // The lag now; never throws (an error is reported in `unknown`).
  ReplicaLag read();

 private:
  struct Standbys {
    std::map<std::string, int> present;  // by "application_name from client address": how many
    double max_seconds = 0;
  };
  Standbys list();
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
  std::map<std::string, int> expected_;
};

}  // namespace rekey::db
