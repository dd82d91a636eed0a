#include "db/pg_table_reader.h"

#include <pqxx/pqxx>

#include "db/connection.h"
#include "db/result_rows.h"
#include "db/sql_text.h"

namespace rekey::db {

PgTableReader::PgTableReader(std::string conninfo, TableShape shape)
    : shape_(std::move(shape)), session_(std::move(conninfo)) {}

PgTableReader::~PgTableReader() = default;

std::vector<Row> PgTableReader::read_after(const std::optional<KeyValues>& after, std::size_t limit) {
  std::string sql = select_rows(shape_, "t");
  std::vector<std::string> params;
  if (after) {
    sql += " WHERE " + key_after(shape_, "t", 1);
    params = *after;
  }
  sql += " ORDER BY " + key_list(shape_, "t.") + " LIMIT " + std::to_string(limit);
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return rows_of(tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params)), shape_, shape_.key_columns.size());
  });
}

std::vector<Row> PgTableReader::read_keys(const std::vector<KeyValues>& keys) {
  if (keys.empty()) return {};
  std::string arrays;
  std::string names;
  std::vector<std::string> params;
  for (std::size_t i = 0; i < shape_.key_columns.size(); ++i) {
    const std::string sep = i > 0 ? ", " : "";
    arrays += sep + "$" + std::to_string(i + 1) + "::text[]";
    names += sep + "k" + std::to_string(i);
    std::vector<std::string> column;
    column.reserve(keys.size());
    for (const auto& key : keys) column.push_back(key.at(i));
    params.push_back(text_array(column));
  }
  const std::string sql =
      select_rows(shape_, "t") + " JOIN unnest(" + arrays + ") AS v(" + names + ") ON " + key_match(shape_, "t", "v");
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return rows_of(tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params)), shape_, shape_.key_columns.size());
  });
}

}  // namespace rekey::db
