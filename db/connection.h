// Opening PostgreSQL connections. Each connection belongs to one thread at a
// time (libpqxx connections are not thread-safe).
#pragma once

#include <memory>
#include <pqxx/connection>
#include <stdexcept>
#include <string>
#include <utility>

#include "migrate/port_error.h"

namespace rekey::db {

// A problem with what the operator named: no such table or column, no primary
// key, a type that cannot hold a token, an unreachable database.
class CatalogError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Connects with libpq's rules (keyword/value string or URI; empty: PG*
// variables and defaults) and pins the session settings rekey depends on,
// whatever PGOPTIONS, ALTER ROLE ... SET or ALTER DATABASE ... SET say:
// search_path = pg_catalog, pg_temp (every table rekey names is qualified);
// extra_float_digits = 3, DateStyle = ISO, IntervalStyle = postgres,
// TimeZone = UTC and client_encoding = UTF8 (SQL_ASCII in a SQL_ASCII
// database, whose bytes are in no encoding), so that a key read as text casts
// back to the same value; application_name = rekey. They hold for the life of
// the connection object, a transparent reconnection by libpqxx included.
// Throws pqxx::broken_connection when the server cannot be reached.
std::unique_ptr<pqxx::connection> connect(const std::string& conninfo);

// A connection that is opened on first use and reopened after it breaks.
// Use from one thread at a time.
class Session {
 public:
  explicit Session(std::string conninfo, std::string setup_sql = "");
  ~Session();
  Session(Session&&) noexcept;

  // Runs `work` on the connection. If it fails because the connection broke
  // (terminated backend, server restart), the connection is dropped, reopened
  // and `work` run once more; a second failure propagates (callers retry
  // longer outages with backoff). Other errors propagate at once; a transient
  // error also drops the connection, so the next call starts clean. What
  // propagates is a PortError (as_port_error).
  template <typename Work>
  auto run(Work&& work) -> decltype(work(std::declval<pqxx::connection&>()));

 private:
  pqxx::connection& open();
  void drop() noexcept;
  std::string conninfo_;
  std::string setup_sql_;
  std::unique_ptr<pqxx::connection> conn_;
};

// True if `e` (a pqxx exception) is worth retrying after reconnecting or
// waiting: connection loss, shutdown, serialization failure, deadlock, lock
// or statement timeout.
bool is_transient(const std::exception& e);

bool is_broken_connection(const std::exception& e);

// What an error says, fit for a log line: the first line of the message (a
// server's DETAIL or CONTEXT lines can quote a row's values), with the
// SQLSTATE for database errors.
std::string error_summary(const std::exception& e);

// The port error (migrate/port_error.h) that libpqxx's exception `e` is, with
// error_summary(e) as its message: the one place where the ports' error
// vocabulary is given to what the driver throws. `e` if it is one already.
PortError as_port_error(const std::exception& e);

// Runs `work`, throwing every exception it throws as_port_error(): the body of
// each port method, so that no libpqxx exception reaches the engine.
template <typename Work>
auto as_port_errors(Work&& work) -> decltype(work()) {
  try {
    return work();
  } catch (const std::exception& e) {
    throw as_port_error(e);
  }
}

template <typename Work>
auto Session::run(Work&& work) -> decltype(work(std::declval<pqxx::connection&>())) {
  for (int attempt = 0;; ++attempt) {
    try {
      return work(open());
    } catch (const std::exception& e) {
      if (is_transient(e)) drop();
      if (attempt > 0 || !is_broken_connection(e)) throw as_port_error(e);
    }
  }
}

}  // namespace rekey::db
