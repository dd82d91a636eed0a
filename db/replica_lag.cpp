#include "db/replica_lag.h"

#include <pqxx/pqxx>

#include "db/connection.h"
#include "migrate/log.h"

namespace rekey::db {

ReplicaLagProbe::ReplicaLagProbe(std::string conninfo) : conninfo_(std::move(conninfo)) {}
ReplicaLagProbe::~ReplicaLagProbe() = default;

double ReplicaLagProbe::max_lag_seconds() {
  try {
    if (!conn_ || !conn_->is_open()) conn_ = connect(conninfo_);
    pqxx::nontransaction tx(*conn_);
    return tx.exec1("SELECT COALESCE(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication")[0]
        .as<double>();
  } catch (const std::exception& e) {
    conn_.reset();
    log::warn("cannot read replica lag: {}", error_summary(e));
    return 0;
  }
}

}  // namespace rekey::db
