// The state schema's DDL (sql/state_schema.sql): creating it, and bringing
// one an older rekey made up to date. Used by StateStore only.
#pragma once

#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace rekey::db {

// True when `schema` exists.
bool schema_exists_in(pqxx::transaction_base& tx, const std::string& schema);

// Creates `schema` and those of `tables` that are missing, then adds the
// columns later versions added, in `tx` (the caller commits); serialized
// across runners by an advisory lock. A schema that has everything takes no
// lock beyond reading the catalog. Throws std::invalid_argument for a name
// with a control character.
void create_or_upgrade_state_schema(pqxx::work& tx, const std::string& schema, const std::vector<std::string>& tables);

}  // namespace rekey::db
