#include "db/pg_row_scanner.h"

#include <algorithm>
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

void PgRowScanner::begin(const ReadLimit& limit) {
  // Repeatable read even on a snapshot of its own: long values are read by
  // key in later statements, which must see the rows the cursor saw.
  tx_ = std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*conn_);
  if (!settings_.snapshot.empty()) tx_->exec("SET TRANSACTION SNAPSHOT " + tx_->quote(settings_.snapshot));
  max_short_bytes_ = std::max<std::size_t>(1, limit.bytes / std::max<std::size_t>(1, limit.rows));
  std::string sql = select_short_values(shape_, "s", max_short_bytes_);
  if (settings_.filter) sql += " WHERE " + holds_token_sign(shape_, *settings_.filter, "s");
  if (settings_.first_rows > 0) {
    if (!shape_.key_columns.empty()) sql += " ORDER BY " + key_list(shape_, "s.");
    sql += " LIMIT " + std::to_string(settings_.first_rows);
  }
  tx_->exec(std::string("DECLARE ") + kCursor + " NO SCROLL CURSOR FOR " + sql);
}

// Appends up to `rows` rows of the cursor to fetched_.
void PgRowScanner::fetch(std::size_t rows) {
  const pqxx::result r = tx_->exec("FETCH FORWARD " + std::to_string(rows) + " FROM " + kCursor);
  if (r.empty()) cursor_done_ = true;
  const std::size_t key_fields = shape_.key_columns.empty() ? 1 : shape_.key_columns.size();
  const std::size_t length_field = key_fields + shape_.columns.size();
  std::vector<Row> decoded = rows_of(r, shape_, key_fields);
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    const auto fields = r[static_cast<int>(i)];
    Fetched f{std::move(decoded[i]), {}};
    for (std::size_t c = 0; c < shape_.columns.size(); ++c) {
      const pqxx::field length = fields[static_cast<int>(length_field + c)];
      f.lengths.push_back(length.is_null() ? std::nullopt : std::optional<std::size_t>(length.as<std::size_t>()));
    }
    fetched_.push_back(std::move(f));
  }
}

// The first fetched rows within `limit`, counting left-out values by length.
std::vector<PgRowScanner::Fetched> PgRowScanner::take(const ReadLimit& limit) {
  std::vector<Fetched> out;
  std::size_t bytes = 0;
  while (!fetched_.empty() && out.size() < limit.rows && (out.empty() || bytes < limit.bytes)) {
    for (const auto& length : fetched_.front().lengths) bytes += length.value_or(0);
    out.push_back(std::move(fetched_.front()));
    fetched_.pop_front();
  }
  return out;
}

// Fills in the values the cursor left out, reading their rows by key (a
// relation without a primary key: by ctid) in the cursor's snapshot.
void PgRowScanner::read_long_values(std::vector<Fetched>& rows) {
  std::vector<Fetched*> missing;
  for (Fetched& f : rows) {
    for (std::size_t c = 0; c < f.lengths.size(); ++c) {
      if (f.lengths[c] && !f.row.values[c]) {
        missing.push_back(&f);
        break;
      }
    }
  }
  if (missing.empty()) return;
  std::vector<KeyValues> keys;
  for (const Fetched* f : missing) keys.push_back(f->row.key);
  const std::size_t key_fields = std::max<std::size_t>(1, shape_.key_columns.size());
  const pqxx::result r = tx_->exec_params(select_rows(shape_, "s", "v.ord") + join_keys(shape_, "s", 1),
                                          pqxx::prepare::make_dynamic_params(key_arrays(shape_, keys)));
  if (r.size() != keys.size()) {
    throw std::runtime_error("table " + shape_.display_name() + ": a row the scan read is gone from its snapshot");
  }
  const std::vector<Row> full = rows_of(r, shape_, key_fields);
  const int ord_field = static_cast<int>(key_fields + shape_.columns.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    Fetched& f = *missing.at(r[static_cast<int>(i)][ord_field].as<std::size_t>() - 1);
    for (std::size_t c = 0; c < f.lengths.size(); ++c) {
      if (f.lengths[c] && !f.row.values[c]) f.row.values[c] = full[i].values[c];
    }
  }
}

std::vector<Row> PgRowScanner::next(const ReadLimit& limit) {
  return as_port_errors([&] {
    if (finished_) return std::vector<Row>{};
    if (!tx_) begin(limit);
    if (fetched_.size() < limit.rows && !cursor_done_) fetch(limit.rows - fetched_.size());
    std::vector<Fetched> taken = take(limit);
    read_long_values(taken);
    std::vector<Row> rows;
    rows.reserve(taken.size());
    for (Fetched& f : taken) rows.push_back(std::move(f.row));
    if (rows.empty()) {
      tx_->commit();
      tx_.reset();
      finished_ = true;
    }
    return rows;
  });
}

}  // namespace rekey::db
