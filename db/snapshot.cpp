#include "db/snapshot.h"

#include <optional>
#include <pqxx/pqxx>
#include <thread>

#include "db/connection.h"

namespace rekey::db {
namespace {

// A transaction id no transaction begun before this call reaches: one
// assigned now, in a transaction of its own (committed at once). Every role
// may, unlike reading other roles' backend_xid in pg_stat_activity, which
// pg_read_all_stats guards. nullopt on a standby, which assigns none.
std::optional<std::string> next_xid(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  if (tx.exec1("SELECT pg_catalog.pg_is_in_recovery()")[0].as<bool>()) return std::nullopt;
  return tx.exec1("SELECT pg_catalog.pg_current_xact_id()::text")[0].as<std::string>();
}

// The transactions below `bound` still in progress, each named as well as
// this role can: "pid N", "prepared 'gid'", or "xid N". `bound` is committed,
// so the snapshot's xmax is past it and each of them is in its xip list.
std::vector<std::string> in_progress_below(pqxx::connection& conn, const std::string& bound) {
  pqxx::nontransaction tx(conn);
  const pqxx::result r = tx.exec_params(
      "WITH open AS (SELECT x FROM pg_catalog.pg_snapshot_xip(pg_catalog.pg_current_snapshot()) AS x "
      "              WHERE x < $1::pg_catalog.xid8) "
      "SELECT COALESCE((SELECT 'pid ' || a.pid FROM pg_catalog.pg_stat_activity a "
      "                 WHERE a.backend_xid OPERATOR(pg_catalog.=) open.x::pg_catalog.xid LIMIT 1), "
      "                (SELECT 'prepared ' || pg_catalog.quote_literal(p.gid) FROM pg_catalog.pg_prepared_xacts p "
      "                 WHERE p.transaction OPERATOR(pg_catalog.=) open.x::pg_catalog.xid LIMIT 1), "
      "                'xid ' || open.x::text) "
      "FROM open ORDER BY open.x LIMIT 20",
      bound);
  std::vector<std::string> out;
  for (const auto& row : r) out.push_back(row[0].as<std::string>());
  return out;
}

// Waits for the transactions begun before `bound` to end, for at most
// `timeout`; returns those still open.
std::vector<std::string> wait_for(pqxx::connection& conn, const std::string& bound, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<std::string> open = in_progress_below(conn, bound);
    if (open.empty() || std::chrono::steady_clock::now() >= deadline) return open;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The WAL's end just after the snapshot was taken (wal_end_from_insert()).
std::uint64_t read_wal_end(pqxx::transaction_base& tx) {
  const pqxx::row r = tx.exec1(
      "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), '0/0')::pg_catalog.text, "
      "pg_catalog.current_setting('wal_block_size'), "
      "pg_catalog.pg_size_bytes(pg_catalog.current_setting('wal_segment_size'))::pg_catalog.text");
  return wal_end_from_insert(std::stoull(r[0].c_str()), std::stoull(r[1].c_str()), std::stoull(r[2].c_str()));
}

}  // namespace

ExportedSnapshot::ExportedSnapshot(const std::string& conninfo, std::chrono::milliseconds wait_for_older)
    : conn_(connect(conninfo)),
      bound_(next_xid(*conn_)),
      older_still_open_(bound_ ? wait_for(*conn_, *bound_, wait_for_older) : std::vector<std::string>{}),
      tx_(std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*conn_)),
      id_(tx_->exec1("SELECT pg_catalog.pg_export_snapshot()")[0].as<std::string>()),
      wal_end_(bound_ ? std::optional<std::uint64_t>(read_wal_end(*tx_)) : std::nullopt) {}

ExportedSnapshot::~ExportedSnapshot() = default;

std::uint64_t wal_end_from_insert(std::uint64_t insert, std::uint64_t page_size, std::uint64_t segment_size) {
  const std::uint64_t in_page = insert % page_size;
  const std::uint64_t header = insert % segment_size < page_size ? 40 : 24;
  return in_page == header ? insert - in_page : insert;
}

bool wait_until_flushed(const std::string& conninfo, std::uint64_t wal_end, std::chrono::milliseconds timeout,
                        const std::function<bool()>& stop_requested) {
  const auto conn = connect(conninfo);
  pqxx::nontransaction tx(*conn);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const bool flushed = tx.exec_params1(
                               "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0') "
                               "OPERATOR(pg_catalog.>=) $1::pg_catalog.numeric",
                               std::to_string(wal_end))[0]
                             .as<bool>();
    if (flushed) return true;
    if (std::chrono::steady_clock::now() >= deadline || stop_requested()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace rekey::db
