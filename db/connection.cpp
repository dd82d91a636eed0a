#include "db/connection.h"

#include <pqxx/pqxx>

namespace rekey::db {

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo) {
  auto conn = std::make_unique<pqxx::connection>(conninfo);
  pqxx::nontransaction tx(*conn);
  tx.exec("SET application_name = 'rekey'");
  return conn;
}

Session::Session(std::string conninfo, std::string setup_sql)
    : conninfo_(std::move(conninfo)), setup_sql_(std::move(setup_sql)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;

pqxx::connection& Session::open() {
  if (!conn_ || !conn_->is_open()) {
    conn_ = connect(conninfo_);
    if (!setup_sql_.empty()) {
      pqxx::nontransaction tx(*conn_);
      tx.exec(setup_sql_);
    }
  }
  return *conn_;
}

void Session::drop() noexcept { conn_.reset(); }

bool is_broken_connection(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string& state = sql->sqlstate();
    return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03";
  }
  return false;
}

std::string error_summary(const std::exception& e) {
  std::string text = e.what();
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.pop_back();
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr && !sql->sqlstate().empty()) {
    text += " [SQLSTATE " + sql->sqlstate() + "]";
  }
  return text;
}

bool is_lock_timeout(const std::exception& e) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  return sql != nullptr && (sql->sqlstate() == "55P03" || sql->sqlstate() == "57014");
}

bool is_transient(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return true;
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string& state = sql->sqlstate();
    // 08: connection exception; 40001 serialization; 40P01 deadlock; 55P03 lock
    // not available; 57014 query canceled (statement/lock timeout); 57P01-03
    // admin shutdown, crash shutdown, cannot connect now.
    return state.rfind("08", 0) == 0 || state == "40001" || state == "40P01" || state == "55P03" || state == "57014" ||
           state == "57P01" || state == "57P02" || state == "57P03";
  }
  return false;
}

}  // namespace rekey::db
