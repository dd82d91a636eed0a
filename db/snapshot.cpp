#include "db/snapshot.h"

#include <algorithm>
#include <pqxx/pqxx>
#include <thread>

#include "db/connection.h"

namespace rekey::db {
namespace {

// The transactions holding an xid now, other than this session's: "pid N"
// or "prepared 'gid'", each with ":xid" so that a new transaction of the same
// backend is not taken for the old one.
std::vector<std::string> holding_xids(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  const pqxx::result r = tx.exec(
      "SELECT 'pid ' || pid || ':' || backend_xid FROM pg_catalog.pg_stat_activity "
      "WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() "
      "UNION ALL SELECT 'prepared ' || pg_catalog.quote_literal(gid) || ':' || transaction "
      "FROM pg_catalog.pg_prepared_xacts ORDER BY 1");
  std::vector<std::string> out;
  for (const auto& row : r) out.push_back(row[0].as<std::string>());
  return out;
}

// Waits for the transactions holding an xid now to end, for at most
// `timeout`; returns those still open (without their ":xid").
std::vector<std::string> wait_for(pqxx::connection& conn, std::chrono::milliseconds timeout) {
  const std::vector<std::string> before = holding_xids(conn);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<std::string> open;
    for (const auto& now : holding_xids(conn)) {
      if (std::find(before.begin(), before.end(), now) != before.end()) open.push_back(now.substr(0, now.rfind(':')));
    }
    if (open.empty() || std::chrono::steady_clock::now() >= deadline) return open;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

ExportedSnapshot::ExportedSnapshot(const std::string& conninfo, std::chrono::milliseconds wait_for_older)
    : conn_(connect(conninfo)),
      older_still_open_(wait_for(*conn_, wait_for_older)),
      tx_(std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*conn_)),
      id_(tx_->exec1("SELECT pg_catalog.pg_export_snapshot()")[0].as<std::string>()) {}

ExportedSnapshot::~ExportedSnapshot() = default;

}  // namespace rekey::db
