// TableReader over PostgreSQL: keyset pagination on the primary key, each
// read its own short READ ONLY transaction, so no snapshot outlives a batch.
#pragma once

#include <memory>
#include <string>

#include "db/connection.h"
#include "migrate/table_port.h"

namespace rekey::db {

class PgTableReader final : public TableReader {
 public:
  // Owns its connection; use from one thread at a time.
  PgTableReader(std::string conninfo, TableShape shape);
  ~PgTableReader() override;

  std::vector<Row> read_range(const KeyRange& range, const ReadLimit& limit) override;
  KeyedRows read_keys(const std::vector<KeyValues>& keys, std::size_t max_bytes) override;

 private:
  TableShape shape_;
  Session session_;
};

}  // namespace rekey::db
