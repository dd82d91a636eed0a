#include "db/replica_lag.h"

#include <limits>
#include <pqxx/pqxx>
#include <stdexcept>

#include "common/log.h"
#include "db/connection.h"

namespace rekey::db {
namespace {

// Thrown by list() when the role sees the standbys but not their state.
class HiddenDetails : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace

ReplicaLagProbe::ReplicaLagProbe(std::string conninfo) : conninfo_(std::move(conninfo)) {}
ReplicaLagProbe::~ReplicaLagProbe() = default;

ReplicaLagProbe::Standbys ReplicaLagProbe::list() {
  if (!conn_ || !conn_->is_open()) conn_ = connect(conninfo_);
  pqxx::nontransaction tx(*conn_);
  // Without pg_read_all_stats a role sees each sender's pid and name, and
  // NULL for everything else. replay_lag is NULL too for a standby idle and
  // caught up: the positions tell that one from one that has not reported.
  const pqxx::result r = tx.exec(
      "SELECT COALESCE(application_name, '') || ' from ' || COALESCE(pg_catalog.host(client_addr), 'local socket'), "
      "  state IS NULL, extract(epoch FROM replay_lag)::pg_catalog.float8, "
      "  COALESCE(replay_lsn OPERATOR(pg_catalog.>=) sent_lsn, false) "
      "FROM pg_catalog.pg_stat_replication WHERE state IS DISTINCT FROM 'backup'");
  Standbys out;
  for (const auto& row : r) {
    if (row[1].as<bool>()) {
      throw HiddenDetails(
          "rekey's role cannot read the standbys' state in pg_stat_replication: grant it pg_read_all_stats (or "
          "pg_monitor)");
    }
    ++out.present[row[0].as<std::string>()];
    const double lag = !row[2].is_null()   ? row[2].as<double>()
                       : row[3].as<bool>() ? 0
                                           : std::numeric_limits<double>::infinity();
    out.max_seconds = std::max(out.max_seconds, lag);
  }
  return out;
}

std::optional<std::string> ReplicaLagProbe::start() {
  try {
    expected_ = list().present;
  } catch (const HiddenDetails& e) {
    return std::string(e.what());
  } catch (const std::exception& e) {
    conn_.reset();
    return "cannot read the replica lag: " + error_summary(e);
  }
  for (const auto& [standby, n] : expected_) log::info("--max-replica-lag: watching standby {}", standby);
  if (expected_.empty()) log::info("--max-replica-lag: no standby is connected now");
  return std::nullopt;
}

ReplicaLag ReplicaLagProbe::read() {
  Standbys now;
  try {
    now = list();
  } catch (const HiddenDetails& e) {
    return {0, std::string(e.what())};
  } catch (const std::exception& e) {
    conn_.reset();
    return {0, "cannot read the replica lag: " + error_summary(e)};
  }
  for (const auto& [standby, n] : expected_) {
    if (now.present[standby] < n) return {now.max_seconds, "standby " + log::printable(standby) + " is not connected"};
  }
  return {now.max_seconds, std::nullopt};
}

}  // namespace rekey::db
