#include "db/table_lock.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "db/connection.h"

namespace rekey::db {
namespace {
// A table's lock is the two-int advisory lock (kLockSpace, the table's OID):
// the two-int form keeps rekey's locks apart from the application's bigint
// ones, and the OID tells every table apart (a hash of the name did not). The
// OID, an unsigned 32-bit number, is passed as the int4 with the same bits;
// pg_locks shows it back as objid (an oid), with objsubid 2.
constexpr int kLockSpace = 0x72656b;    // "rek"
constexpr int kWorkerSpace = 0x72656c;  // "rel": a worker's liveness lock, (kWorkerSpace, token)

// The OID of the table whose display name is parameter $2, as SQL (NULL when no such table).
const std::string kTableOid = "pg_catalog.to_regclass($2)::pg_catalog.oid";
// True for a pg_locks row `l` that is that table's lock, granted ($1: kLockSpace), as SQL.
const std::string kHeldLock = "l.locktype = 'advisory' AND l.classid = $1::pg_catalog.oid AND l.objid = " + kTableOid +
                              " AND l.objsubid = 2 AND l.granted AND l.database = "
                              "(SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())";

std::string holder_of(pqxx::transaction_base& tx, const std::string& name) {
  const pqxx::result holder = tx.exec_params(
      std::string("SELECT a.pid, COALESCE(pg_catalog.host(a.client_addr), 'local socket'), "
                  "pg_catalog.to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS OF'), COALESCE(a.application_name, '') "
                  "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid WHERE ") +
          kHeldLock,
      kLockSpace, name);
  if (holder.empty()) return "another session (it just released the lock; try again)";
  return "backend pid " + holder[0][0].as<std::string>() + " from " + holder[0][1].as<std::string>() + ", started " +
         holder[0][2].as<std::string>() + " (" + holder[0][3].as<std::string>() + ")";
}

}  // namespace

TableLocks::TableLocks(const std::string& conninfo) : conninfo_(conninfo), conn_(connect(conninfo)) {}
TableLocks::~TableLocks() = default;

std::optional<std::string> TableLocks::try_lock(const TableShape& shape, LockShare share) {
  pqxx::nontransaction tx(*conn_);
  const std::string name = shape.display_name();
  const std::string key = "($1, (" + kTableOid + ")::pg_catalog.int4)";
  if (share == LockShare::kAlone) {
    // Alone now: the exclusive lock, then the shared one, then the exclusive let go.
    const pqxx::row alone = tx.exec_params1("SELECT pg_catalog.pg_try_advisory_lock" + key, kLockSpace, name);
    if (alone[0].is_null()) throw CatalogError("table " + name + " no longer exists");
    if (!alone[0].as<bool>()) return holder_of(tx, name);
  }
  const pqxx::row locked = tx.exec_params1("SELECT pg_catalog.pg_try_advisory_lock_shared" + key, kLockSpace, name);
  if (share == LockShare::kAlone) tx.exec_params("SELECT pg_catalog.pg_advisory_unlock" + key, kLockSpace, name);
  if (locked[0].is_null()) throw CatalogError("table " + name + " no longer exists");
  if (locked[0].as<bool>()) {
    if (std::none_of(held_.begin(), held_.end(), [&](const TableShape& t) { return t.display_name() == name; })) {
      held_.push_back(shape);
    }
    return std::nullopt;
  }
  return holder_of(tx, name);
}

bool TableLocks::still_held() {
  return as_port_errors([&] {
    try {
      if (conn_ && conn_->is_open()) {
        pqxx::nontransaction tx(*conn_);
        tx.exec("SELECT 1");
        return true;
      }
    } catch (const std::exception& e) {
      if (!is_transient(e)) throw;
    }
    // The session that held the locks is gone, and its locks with it.
    conn_.reset();
    conn_ = connect(conninfo_);
    const std::vector<TableShape> tables = held_;
    if (worker_token_) hold_worker_lock(*worker_token_);
    for (const auto& t : tables) {
      if (try_lock(t, LockShare::kJoin)) return false;
    }
    return true;
  });
}

void TableLocks::hold_worker_lock(std::int32_t token) {
  pqxx::nontransaction tx(*conn_);
  tx.exec_params("SELECT pg_catalog.pg_advisory_lock($1, $2)", kWorkerSpace, token);
  worker_token_ = token;
}

std::string worker_alive_sql(const std::string& token) {
  return "EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.classid = " +
         std::to_string(kWorkerSpace) + "::pg_catalog.oid AND l.objid = (" + token +
         ")::pg_catalog.oid AND l.objsubid = 2 AND l.granted AND l.database = (SELECT oid FROM "
         "pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))";
}

void TableLocks::lock_run_opening(const std::string& schema) {
  pqxx::nontransaction tx(*conn_);
  tx.exec_params("SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext($1))", "rekey run opening " + schema);
}

void TableLocks::unlock_run_opening(const std::string& schema) {
  pqxx::nontransaction tx(*conn_);
  tx.exec_params("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext($1))", "rekey run opening " + schema);
}

std::vector<std::string> locked_tables(pqxx::connection& conn, const std::vector<std::string>& tables) {
  pqxx::read_transaction tx(conn);
  std::vector<std::string> out;
  for (const auto& name : tables) {
    const bool held = tx.exec_params1("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE " + kHeldLock + ")",
                                      kLockSpace, name)[0]
                          .as<bool>();
    if (held) out.push_back(name);
  }
  return out;
}

}  // namespace rekey::db
