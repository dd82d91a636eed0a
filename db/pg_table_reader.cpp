#include "db/pg_table_reader.h"

#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"
#include "db/result_rows.h"
#include "db/sql_text.h"

namespace rekey::db {

PgTableReader::PgTableReader(std::string conninfo, TableShape shape)
    : shape_(std::move(shape)), session_(std::move(conninfo)) {}

PgTableReader::~PgTableReader() = default;

std::vector<Row> PgTableReader::read_range(const KeyRange& range, const ReadLimit& limit) {
  std::vector<std::string> params;
  std::vector<std::string> conditions;
  if (range.after) {
    conditions.push_back(key_after(shape_, "t", params.size() + 1));
    params.insert(params.end(), range.after->begin(), range.after->end());
  }
  if (range.up_to) {
    conditions.push_back(key_up_to(shape_, "t", params.size() + 1));
    params.insert(params.end(), range.up_to->begin(), range.up_to->end());
  }
  std::string where;
  for (const auto& c : conditions) where += (where.empty() ? " WHERE (" : " AND (") + c + ")";
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
  const std::vector<std::string> params = key_arrays(shape_, keys);
  const std::string join = join_keys(shape_, "t", 1);
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
