#include "db/result_rows.h"

#include <pqxx/pqxx>

namespace rekey::db {

std::vector<Row> rows_of(const pqxx::result& result, const TableShape& shape, std::size_t key_fields) {
  std::vector<Row> rows;
  rows.reserve(result.size());
  for (const auto& r : result) {
    Row row;
    row.key.reserve(key_fields);
    for (std::size_t k = 0; k < key_fields; ++k) {
      row.key.emplace_back(r[static_cast<int>(k)].c_str(), r[static_cast<int>(k)].size());
    }
    row.values.reserve(shape.columns.size());
    for (std::size_t c = 0; c < shape.columns.size(); ++c) {
      const pqxx::field f = r[static_cast<int>(key_fields + c)];
      if (f.is_null()) {
        row.values.emplace_back(std::nullopt);
      } else if (shape.kinds[c] == ColumnKind::kBytea) {
        row.values.emplace_back(pqxx::binarystring(f).str());
      } else {
        row.values.emplace_back(std::string(f.c_str(), f.size()));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace rekey::db
