// What a census or a discovery covers: every column of a scope that can hold
// a token, what of it cannot be checked (and why), and what the operator
// excluded by name.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "db/discovery_queries.h"

namespace rekey {

// --exclude SCHEMA.TABLE[.COLUMN] (repeatable, SQL identifier rules).
class Exclusions {
 public:
  // Throws UsageError naming a malformed spec.
  explicit Exclusions(const std::vector<std::string>& specs);
  bool excludes(const std::string& schema, const std::string& table) const;
  bool excludes(const std::string& schema, const std::string& table, const std::string& column) const;
  // The specs, in display form, for reports.
  std::vector<std::string> display() const;

 private:
  struct Entry {
    std::string schema;
    std::string table;
    std::optional<std::string> column;
  };
  std::vector<Entry> entries_;
};

enum class UncheckedCause { kRowSecurity, kForeignTable, kUnreadable, kUnsearchable, kOpenTransaction, kUnflushedWal };

// Something in scope that rekey cannot check, and what to do about it.
struct Unchecked {
  std::string object;  // schema.table or schema.table.column, display form
  UncheckedCause cause = UncheckedCause::kUnreadable;
  std::string reason;  // the cause and its fix, for the operator
};

// {object, reason}, as reports and --format json show it.
void to_json(nlohmann::json& j, const Unchecked& u);

struct Scope {
  // Relations with the candidate columns that can be checked (readable, not
  // excluded); relations left without one are dropped.
  std::vector<db::ScopeRelation> relations;
  std::vector<Unchecked> unchecked;   // makes a census fail
  std::vector<std::string> excluded;  // what --exclude left out, display form
};

// Every relation of the database's user schemas (or `schemas`), less
// `exclusions` and rekey's own state tables in `state_schema` (never a whole
// schema: anything else there is checked); both are listed as excluded.
Scope database_scope(db::DiscoveryQueries& queries, const std::vector<std::string>& schemas,
                     const std::string& state_schema, const Exclusions& exclusions);

// The named [SCHEMA.]TABLE.COLUMN specs, each table with its inheritance
// children and partitions. Throws UsageError for a name that is no table,
// or a column that does not exist or cannot hold a token.
Scope named_scope(db::DiscoveryQueries& queries, const std::vector<std::string>& column_specs);

// Why `rotate` cannot rewrite `column`, or nullopt when it can.
std::optional<std::string> why_not_rotatable(const db::ScopeRelation& relation, const db::ScopeColumn& column);

}  // namespace rekey
