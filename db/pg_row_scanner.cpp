#include "db/pg_row_scanner.h"

#include <pqxx/pqxx>

#include "db/connection.h"
#include "db/result_rows.h"
#include "db/sql_text.h"

namespace rekey::db {
namespace {
constexpr const char* kCursor = "rekey_scan";
}  // namespace

PgRowScanner::PgRowScanner(const std::string& conninfo, TableShape shape, ScanSettings settings)
    : shape_(std::move(shape)), settings_(std::move(settings)), conn_(connect(conninfo)) {}

PgRowScanner::~PgRowScanner() = default;

std::string PgRowScanner::query() const {
  std::string sql = select_rows(shape_, "s");
  if (settings_.filter) sql += " WHERE " + holds_token_sign(shape_, *settings_.filter, "s");
  if (settings_.first_rows > 0) {
    if (!shape_.key_columns.empty()) sql += " ORDER BY " + key_list(shape_, "s.");
    sql += " LIMIT " + std::to_string(settings_.first_rows);
  }
  return sql;
}

std::vector<Row> PgRowScanner::next(std::size_t limit) {
  if (finished_) return {};
  if (!tx_) {
    if (settings_.snapshot.empty()) {
      tx_ = std::make_unique<pqxx::read_transaction>(*conn_);
    } else {
      tx_ = std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*conn_);
      tx_->exec("SET TRANSACTION SNAPSHOT " + tx_->quote(settings_.snapshot));
    }
    tx_->exec(std::string("DECLARE ") + kCursor + " NO SCROLL CURSOR FOR " + query());
  }
  const pqxx::result r = tx_->exec("FETCH FORWARD " + std::to_string(limit) + " FROM " + kCursor);
  std::vector<Row> rows = rows_of(r, shape_, shape_.key_columns.empty() ? 1 : shape_.key_columns.size());
  if (rows.empty()) {
    tx_->commit();
    tx_.reset();
    finished_ = true;
  }
  return rows;
}

}  // namespace rekey::db
