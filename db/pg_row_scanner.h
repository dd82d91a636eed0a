// RowScanner over PostgreSQL: a cursor in one REPEATABLE READ, READ ONLY
// transaction, so a relation is read whole from one snapshot, in a sequential
// scan, with `ONLY` (an inheritance child is a relation of its own, scanned on
// its own). Bounded in bytes: the cursor brings short values only (at most
// ReadLimit::bytes / ReadLimit::rows each); a longer one is read afterwards
// by its row's ctid, in the same snapshot, only once its row is handed out.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <pqxx/types>
#include <string>
#include <vector>

#include "db/sql_text.h"
#include "migrate/table_port.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace rekey::db {

struct ScanSettings {
  // Only rows where some scanned column shows a sign of a token, filtered by
  // the server; nullopt: every row.
  std::optional<TokenFilter> filter;
  // Only the first this many rows (in key order when the relation has a
  // primary key); 0: every row, in no particular order.
  std::int64_t first_rows = 0;
  // An exported snapshot to read from (ExportedSnapshot::id); empty: the
  // scan's own.
  std::string snapshot;
};

class PgRowScanner final : public RowScanner {
 public:
  // Scans `shape`'s columns; an empty shape.key_columns keys rows by ctid.
  // Owns its connection and transaction; use from one thread at a time.
  PgRowScanner(const std::string& conninfo, TableShape shape, ScanSettings settings);
  ~PgRowScanner() override;

  std::vector<Row> next(const ReadLimit& limit) override;

 private:
  // A row as the cursor brought it: its long values left out.
  struct Fetched {
    Row row;
    std::vector<std::optional<std::size_t>> lengths;  // each value's bytes; nullopt: NULL
  };

  void begin(const ReadLimit& limit);
  void fetch(std::size_t rows);
  std::vector<Fetched> take(const ReadLimit& limit);
  void read_long_values(std::vector<Fetched>& rows);

  TableShape shape_;
  ScanSettings settings_;
  std::unique_ptr<pqxx::connection> conn_;  // declared before tx_: outlives it
  std::unique_ptr<pqxx::transaction_base> tx_;
  std::size_t max_short_bytes_ = 0;  // the longest value the cursor brings
  std::deque<Fetched> fetched_;      // brought by the cursor, not handed out yet
  bool cursor_done_ = false;
  bool finished_ = false;
};

}  // namespace rekey::db
