// Forward declaration of pqxx::connection (an alias in libpqxx 6.4), so that
// db/ headers need not include libpqxx.
#pragma once

namespace pqxx {
class connect_direct;
template <typename CONNECTPOLICY>
class basic_connection_base;
using connection = basic_connection_base<connect_direct>;
}  // namespace pqxx
