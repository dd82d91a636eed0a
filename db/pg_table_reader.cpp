#include "db/pg_table_reader.h"

#include <pqxx/pqxx>

#include "db/connection.h"
#include "db/identifier.h"
#include "db/result_rows.h"
#include "db/sql_text.h"

namespace rekey::db {

PgTableReader::PgTableReader(std::string conninfo, TableShape shape)
    : shape_(std::move(shape)), session_(std::move(conninfo)) {}

PgTableReader::~PgTableReader() = default;

std::vector<Row> PgTableReader::read_after(const std::optional<KeyValues>& after, const ReadLimit& limit) {
  std::vector<std::string> params;
  std::string where;
  if (after) {
    where = " WHERE " + key_after(shape_, "t", 1);
    params = *after;
  }
  std::vector<std::string> order;
  for (const auto& column : shape_.key_columns) order.push_back("t." + quote_ident(column));
  const std::string sql = rows_within(shape_, "t", order, where, CountRows::kNo, limit.rows, limit.bytes);
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return rows_of(tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params)), shape_, shape_.key_columns.size());
  });
}

KeyedRows PgTableReader::read_keys(const std::vector<KeyValues>& keys, std::size_t max_bytes) {
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
  const std::string join = " JOIN pg_catalog.unnest(" + arrays + ") WITH ORDINALITY AS v(" + names + ", ord) ON " +
                           key_match(shape_, "t", "v");
  const std::string sql = rows_within(shape_, "t", {"v.ord"}, join, CountRows::kYes, 0, max_bytes);
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const pqxx::result r = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
    KeyedRows out{rows_of(r, shape_, shape_.key_columns.size()), keys.size()};
    // Cut short: the keys up to the last row read are read, the others not yet.
    const int position = static_cast<int>(shape_.key_columns.size() + shape_.columns.size());
    if (!r.empty() && r[0][position + 1].as<std::size_t>() > r.size()) {
      out.keys_read = r.back()[position].as<std::size_t>();
    }
    return out;
  });
}

}  // namespace rekey::db
