// Decoding query results into the engine's rows. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "migrate/table_port.h"

namespace pqxx {
class result;
}  // namespace pqxx

namespace rekey::db {

// One Row per result row: the first `key_fields` fields (text) are the key,
// then one field per shape.columns (text, or bytea as raw bytes), NULL as
// nullopt.
std::vector<Row> rows_of(const pqxx::result& result, const TableShape& shape, std::size_t key_fields);

}  // namespace rekey::db
