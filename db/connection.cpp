#include "db/connection.h"

#include <pqxx/pqxx>
#include <utility>

namespace rekey::db {
namespace {

// The session settings every connection of rekey runs with (see connect()).
constexpr std::pair<const char*, const char*> kPinnedSettings[] = {
    // Nothing planted in another schema (a function or operator shadowing a
    // built-in one, a table shadowing a catalog) runs as rekey's role: rekey
    // quotes and qualifies every table, and names the schema of every
    // non-catalog type (format_type() does) and operator (KeyOperators).
    {"search_path", "pg_catalog, pg_temp"},
    // Key values read as text come back to the same value when cast back:
    // every float digit, ISO dates, one time zone, one interval style.
    {"extra_float_digits", "3"},
    {"DateStyle", "'ISO, MDY'"},
    {"IntervalStyle", "postgres"},
    {"TimeZone", "'UTC'"},
    // Key text passes through unconverted, whatever the client's locale.
    {"client_encoding", "'UTF8'"},
    {"application_name", "'rekey'"},
};

// `conninfo` naming rekey as the application from the start, before any SET:
// other sessions' readers (the pace's probe among them) never see a
// connection of rekey under another name. A later keyword wins in libpq.
std::string named_conninfo(const std::string& conninfo) {
  const bool uri = conninfo.rfind("postgres://", 0) == 0 || conninfo.rfind("postgresql://", 0) == 0;
  if (!uri) return conninfo + " application_name=rekey";
  return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + "application_name=rekey";
}

}  // namespace

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo) {
  auto conn = std::make_unique<pqxx::connection>(named_conninfo(conninfo));
  // set_variable(): libpqxx 6 reconnects a broken connection by itself, and
  // sets these again when it does.
  for (const auto& [name, value] : kPinnedSettings) conn->set_variable(name, value);
  // A SQL_ASCII database holds bytes in no encoding (a key may be Latin-1, or
  // '\xff'): they pass both ways unconverted and unchecked only under
  // SQL_ASCII; under UTF8 the server refuses them as parameters.
  if (conn->get_variable("server_encoding") == "SQL_ASCII") conn->set_variable("client_encoding", "'SQL_ASCII'");
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

namespace {
// True for a lock wait or statement that hit its timeout (55P03, 57014).
bool is_lock_timeout_state(const std::exception& e) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  return sql != nullptr && (sql->sqlstate() == "55P03" || sql->sqlstate() == "57014");
}

PortFailure failure_of(const std::exception& e) {
  if (is_lock_timeout_state(e)) return PortFailure::kLockTimeout;
  if (is_broken_connection(e)) return PortFailure::kLostConnection;
  return is_transient(e) ? PortFailure::kTransient : PortFailure::kPermanent;
}
}  // namespace

PortError as_port_error(const std::exception& e) {
  if (const auto* port = dynamic_cast<const PortError*>(&e)) return *port;
  return PortError(failure_of(e), error_summary(e));
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
