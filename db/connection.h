// Opening PostgreSQL connections. Each connection belongs to one thread at a
// time (libpqxx connections are not thread-safe).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "db/pqxx_fwd.h"

namespace rekey::db {

// A problem with what the operator named: no such table or column, no primary
// key, a type that cannot hold a token, an unreachable database.
class CatalogError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Connects with libpq's rules (keyword/value string or URI; empty: PG*
// variables and defaults) and sets application_name to "rekey". Throws
// pqxx::broken_connection when the server cannot be reached.
std::unique_ptr<pqxx::connection> connect(const std::string& conninfo);

// True if `e` (a pqxx exception) is worth retrying after reconnecting or
// waiting: connection loss, shutdown, serialization failure, deadlock, lock
// or statement timeout.
bool is_transient(const std::exception& e);

}  // namespace rekey::db
