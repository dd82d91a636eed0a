// TableWriter over PostgreSQL: one UPDATE per batch with compare-and-swap on
// the values read, and the batch's state (checkpoint, counts, failures,
// pending rows) in the same short transaction, with bounded lock waits.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "migrate/table_port.h"

#include "db/pqxx_fwd.h"

namespace rekey::db {

struct WriterSettings {
  std::string state_schema = "rekey";
  std::int64_t run_id = 0;
  std::chrono::milliseconds lock_timeout{1000};
  std::chrono::milliseconds statement_timeout{0};  // 0: none
};

class PgTableWriter final : public TableWriter {
 public:
  // `totals` are the run's counts so far for this table (one per column). Owns
  // its connection; use from one thread at a time.
  PgTableWriter(std::string conninfo, TableShape shape, WriterSettings settings, std::vector<ColumnCounts> totals);
  ~PgTableWriter() override;

  std::vector<std::size_t> write(const BatchWrite& batch) override;
  std::vector<KeyValues> pending() override;

 private:
  pqxx::connection& conn();
  std::string counts_json(const std::vector<ColumnCounts>& totals) const;

  std::string conninfo_;
  TableShape shape_;
  WriterSettings settings_;
  std::vector<ColumnCounts> totals_;
  std::string update_sql_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace rekey::db
