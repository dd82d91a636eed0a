// Standby replay lag as seen from the primary, for throttling.
#pragma once

#include <memory>
#include <string>

#include "db/pqxx_fwd.h"

namespace rekey::db {

class ReplicaLagProbe {
 public:
  // Owns a connection; use from one thread at a time.
  explicit ReplicaLagProbe(std::string conninfo);
  ~ReplicaLagProbe();
  // The largest replay_lag in pg_stat_replication, in seconds (0 without
  // standbys). A failed query counts as no lag, after a warning: throttling
  // must not stop a rotation.
  double max_lag_seconds();

 private:
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace rekey::db
