#include "db/table_lock.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "db/connection.h"

namespace rekey::db {
namespace {
// The two-int form keeps rekey's locks apart from the application's bigint ones.
constexpr int kLockSpace = 0x72656b;  // "rek"
}  // namespace

TableLocks::TableLocks(const std::string& conninfo) : conninfo_(conninfo), conn_(connect(conninfo)) {}
TableLocks::~TableLocks() = default;

std::optional<std::string> TableLocks::try_lock(const TableShape& shape) {
  pqxx::nontransaction tx(*conn_);
  const std::string name = shape.display_name();
  if (tx.exec_params1("SELECT pg_try_advisory_lock($1, hashtext($2))", kLockSpace, name)[0].as<bool>()) {
    if (std::none_of(held_.begin(), held_.end(), [&](const TableShape& t) { return t.display_name() == name; })) {
      held_.push_back(shape);
    }
    return std::nullopt;
  }
  const pqxx::result holder = tx.exec_params(
      "SELECT a.pid, COALESCE(host(a.client_addr), 'local socket'), "
      "to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS OF'), COALESCE(a.application_name, '') "
      "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
      "WHERE l.locktype = 'advisory' AND l.classid = $1::oid AND l.objid = hashtext($2)::oid AND l.granted",
      kLockSpace, name);
  if (holder.empty()) return std::string("another session (it just released the lock; try again)");
  return "backend pid " + holder[0][0].as<std::string>() + " from " + holder[0][1].as<std::string>() + ", started " +
         holder[0][2].as<std::string>() + " (" + holder[0][3].as<std::string>() + ")";
}

bool TableLocks::still_held() {
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
  for (const auto& t : tables) {
    if (try_lock(t)) return false;
  }
  return true;
}

}  // namespace rekey::db
