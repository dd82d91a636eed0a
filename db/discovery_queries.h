// Catalog listing and exhaustive token counts for discovery and the census
// (`rekey discover`, `rotate --discover`, `verify`). Read-only: every query
// runs in a READ ONLY transaction and nothing is ever written.
#pragma once

#include <cstdint>
#include <memory>
#include <pqxx/connection>
#include <string>
#include <utility>
#include <vector>

#include "db/sql_text.h"
#include "migrate/table_port.h"

namespace rekey::db {

// A column that could hold a Fernet token: any type but those that cannot
// (numbers, times, addresses, booleans, enums, names of 63 bytes, ...), seen
// through domains however deep and arrays: text-like, json, composite, range,
// hstore, user types, their arrays, bytea.
struct ScopeColumn {
  std::string name;                     // exactly as in the catalog
  std::string type;                     // format_type(), e.g. "character varying(255)"
  ColumnKind kind = ColumnKind::kText;  // how it is read: as text, or bytea as raw bytes
  bool rotatable_type = false;          // text, varchar, char or bytea: rotate can rewrite it
  bool generated = false;               // a generated column (computed from others)
  bool in_key = false;                  // one of the primary key's key columns
  bool readable = false;                // the role may SELECT it, its schema and what keys its rows
  bool searchable = true;               // its text form shows a token as is (not so: bytea[])
};

enum class RelationKind { kTable, kMaterializedView, kForeignTable };

// A relation that stores rows (a table, a partition, an inheritance child, a
// materialized view or a foreign table) with at least one candidate column.
struct ScopeRelation {
  std::string schema;  // exactly as in the catalog
  std::string table;
  RelationKind kind = RelationKind::kTable;
  bool row_security = false;                // row-level security filters what this role sees
  std::vector<std::string> key_columns;     // the primary key's key columns; empty: none
  std::vector<std::string> key_types;       // format_type() of each
  std::vector<KeyOperators> key_operators;  // of each, from its index; empty if one has none
  double estimated_rows = 0;                // pg_class.reltuples; -1: never analyzed
  std::vector<ScopeColumn> columns;

  // The relation read through `columns` (all of them, in order), each with `policy`.
  TableShape shape(ValuePolicy policy) const;
};

// Owns one connection; use from one thread at a time.
class DiscoveryQueries {
 public:
  explicit DiscoveryQueries(const std::string& conninfo);
  ~DiscoveryQueries();

  // The schemas among `schemas` that do not exist (or are not visible).
  std::vector<std::string> missing_schemas(const std::vector<std::string>& schemas);

  // Every relation of the scope that has a candidate column, whatever the
  // role may read. `schemas`: only these; empty: all but pg_catalog,
  // information_schema, pg_toast*, pg_temp*. Ordered by schema, relation,
  // column position.
  std::vector<ScopeRelation> list_scope(const std::vector<std::string>& schemas);

  // The relations of each named table's hierarchy ({schema, table}): the
  // table itself unless it is partitioned, and every inheritance child or
  // partition below it, as list_scope() describes them. A name that is no
  // table, view or materialized view of the catalog yields nothing.
  std::vector<ScopeRelation> list_hierarchies(const std::vector<std::pair<std::string, std::string>>& tables);

  // What `schema.table` is (for messages): "table", "partitioned table",
  // "view", "materialized view", "foreign table", ..., or "" when it does not exist.
  std::string relation_kind(const std::string& schema, const std::string& table);

  // Per column of `shape`, counted by the server over every row (ONLY): the
  // values showing a sign of `strong`, and those showing only a sign of `weak`.
  std::vector<std::pair<std::int64_t, std::int64_t>> count_token_values(const TableShape& shape,
                                                                        const TokenFilter& strong,
                                                                        const TokenFilter& weak);

  // Up to `limit` (0: all) values of `shape`'s single column that show a sign
  // of `filter`; bytea as raw bytes.
  std::vector<std::string> token_values(const TableShape& shape, const TokenFilter& filter, std::size_t limit);

 private:
  std::vector<ScopeRelation> list(const std::string& relations_cte, const std::vector<std::string>& params);
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace rekey::db
