#include "db/preflight.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"

namespace rekey::db {
namespace {

// "SELECT on public.t.c": one privilege of rekey's role on a column, if it lacks it.
std::optional<std::string> lacking_column_privilege(pqxx::transaction_base& tx, const TableShape& shape,
                                                    const std::string& column, const char* privilege) {
  const bool held =
      tx.exec_params1(
            "SELECT pg_catalog.has_column_privilege($1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text)",
            shape.display_name(), column, privilege)[0]
          .as<bool>();
  if (held) return std::nullopt;
  return std::string(privilege) + " on column " + column_display(shape.display_name(), column);
}

}  // namespace

std::optional<std::string> why_read_only(const std::string& conninfo) {
  const auto conn = connect(conninfo);
  pqxx::nontransaction tx(*conn);
  const pqxx::row r =
      tx.exec1("SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')::boolean");
  if (r[0].as<bool>()) return std::string("server is in recovery (read-only): run rotate against the primary");
  if (r[1].as<bool>()) {
    return std::string(
        "the session is read-only (default_transaction_read_only is on for this server, database or role, or in "
        "PGOPTIONS): rotate writes, so connect with a read-write session");
  }
  return std::nullopt;
}

std::vector<std::string> missing_privileges(const std::string& conninfo, const std::vector<TableShape>& shapes) {
  const auto conn = connect(conninfo);
  pqxx::read_transaction tx(*conn);
  std::vector<std::string> missing;
  const auto add = [&](std::optional<std::string> lacking) {
    if (lacking) missing.push_back(std::move(*lacking));
  };
  for (const auto& shape : shapes) {
    if (!tx.exec_params1("SELECT pg_catalog.has_schema_privilege($1, 'USAGE')", shape.schema)[0].as<bool>()) {
      const std::string usage = "USAGE on schema " + quote_ident_if_needed(shape.schema);
      if (std::find(missing.begin(), missing.end(), usage) == missing.end()) missing.push_back(usage);
      continue;
    }
    for (const auto& key : shape.key_columns) add(lacking_column_privilege(tx, shape, key, "SELECT"));
    for (const auto& column : shape.columns) {
      add(lacking_column_privilege(tx, shape, column, "SELECT"));
      add(lacking_column_privilege(tx, shape, column, "UPDATE"));
    }
  }
  return missing;
}

}  // namespace rekey::db
