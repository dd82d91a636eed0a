#include "db/catalog.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"

namespace rekey::db {
namespace {

// A relation of the hierarchy a named table stands for.
struct Relation {
  std::uint32_t oid = 0;
  std::string schema;
  std::string table;
  std::string kind;  // pg_class.relkind
  double estimated_rows = 0;
  bool row_security = false;  // row-level security applies to this role
  std::string where;          // "table s.t", and how it hangs under the named table
};

// Why `schema.table` cannot be rotated when it is no table: what the
// relation is (a view, a materialized view, a foreign table...) and where to
// rotate instead, or that it does not exist.
std::string not_a_table(pqxx::transaction_base& tx, const std::string& schema, const std::string& table) {
  const std::string named = display_name(schema, table);
  const pqxx::result r = tx.exec_params(
      "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2",
      schema, table);
  const std::string kind = r.empty() ? "" : r[0][0].as<std::string>();
  if (kind == "v") return named + " is a view: rotate its base table's column instead";
  if (kind == "m") return named + " is a materialized view: rotate its source table's column, then refresh it";
  if (kind == "f") return named + " is a foreign table: rotate it on the server that stores it";
  if (!kind.empty()) return named + " is not a table (relkind '" + kind + "'): rekey rotates columns of tables";
  return "table " + named + " does not exist (or is not visible to this user)";
}

// The named table (relkind r or p), then every relation below it, at any
// depth, by schema and name.
std::vector<Relation> hierarchy(pqxx::transaction_base& tx, const std::string& schema, const std::string& table) {
  const std::string named = display_name(schema, table);
  const pqxx::result root = tx.exec_params(
      "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
      schema, table);
  if (root.empty()) throw CatalogError(not_a_table(tx, schema, table));
  const pqxx::result tree = tx.exec_params(
      "WITH RECURSIVE tree(oid) AS ("
      "  SELECT $1::oid UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) "
      "SELECT c.oid, n.nspname, c.relname, c.relkind::text, GREATEST(c.reltuples, 0)::float8, "
      "  row_security_active(c.oid), c.relispartition "
      "FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace "
      "ORDER BY c.oid <> $1, n.nspname, c.relname",
      root[0][0].as<std::uint32_t>());
  std::vector<Relation> out;
  for (const auto& r : tree) {
    Relation rel;
    rel.oid = r[0].as<std::uint32_t>();
    rel.schema = r[1].as<std::string>();
    rel.table = r[2].as<std::string>();
    rel.kind = r[3].as<std::string>();
    rel.estimated_rows = r[4].as<double>();
    rel.row_security = r[5].as<bool>();
    rel.where = "table " + display_name(rel.schema, rel.table);
    if (!out.empty()) rel.where += (r[6].as<bool>() ? " (a partition of " : " (inherits from ") + named + ")";
    out.push_back(std::move(rel));
  }
  return out;
}

// The btree operators of a primary key's column, from the operator class of
// its index (a primary key's index always uses the column type's default
// class, whose order ORDER BY follows too).
KeyOperators key_operators(pqxx::transaction_base& tx, std::uint32_t opclass, const std::string& where) {
  const pqxx::result r = tx.exec_params(
      "SELECT ap.amopstrategy, n.nspname, o.oprname FROM pg_opclass oc "
      "JOIN pg_amop ap ON ap.amopfamily = oc.opcfamily AND ap.amoplefttype = oc.opcintype "
      "AND ap.amoprighttype = oc.opcintype AND ap.amopstrategy IN (1, 2, 3, 4, 5) "
      "JOIN pg_operator o ON o.oid = ap.amopopr JOIN pg_namespace n ON n.oid = o.oprnamespace "
      "WHERE oc.oid = $1 ORDER BY ap.amopstrategy",
      opclass);
  if (r.size() != 5) throw CatalogError(where + " has no btree ordering rekey can page on");
  const auto op = [&](int row) {
    return "OPERATOR(" + quote_ident(r[row][1].as<std::string>()) + "." + r[row][2].as<std::string>() + ")";
  };
  return KeyOperators{op(0), op(1), op(2), op(3), op(4)};
}

// The primary key of `rel` into `shape`: its key columns only (INCLUDE
// columns ride along in the index but do not identify a row, and may be NULL).
void resolve_key(pqxx::transaction_base& tx, const Relation& rel, TableShape& shape) {
  const pqxx::result pk = tx.exec_params(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), i.indclass[k.ord::int - 1] FROM pg_index i "
      "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "WHERE i.indrelid = $1 AND i.indisprimary AND k.ord <= i.indnkeyatts ORDER BY k.ord",
      rel.oid);
  if (pk.empty()) throw CatalogError(rel.where + " has no primary key; rekey needs one to page and to write safely");
  for (const auto& r : pk) {
    shape.key_columns.push_back(r[0].as<std::string>());
    shape.key_types.push_back(r[1].as<std::string>());
    shape.key_operators.push_back(key_operators(
        tx, r[2].as<std::uint32_t>(), rel.where + ", key column " + quote_ident_if_needed(shape.key_columns.back())));
  }
}

// Adds `column` of `rel` to `shape`, which already has its key.
void resolve_column(pqxx::transaction_base& tx, const Relation& rel, const std::string& column, TableShape& shape) {
  const std::string where = rel.where + ", column " + quote_ident_if_needed(column);
  if (std::find(shape.columns.begin(), shape.columns.end(), column) != shape.columns.end()) {
    throw CatalogError(where + " is named twice");
  }
  if (std::find(shape.key_columns.begin(), shape.key_columns.end(), column) != shape.key_columns.end()) {
    throw CatalogError(where + " is part of the primary key; rekey does not rewrite key columns");
  }
  const pqxx::result col = tx.exec_params(
      "SELECT COALESCE(bt.typname, t.typname), format_type(a.atttypid, a.atttypmod), a.attgenerated <> '' "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
      "WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
      rel.oid, column);
  if (col.empty()) throw CatalogError(where + " does not exist");
  if (col[0][2].as<bool>()) {
    throw CatalogError(where + " is a generated column: PostgreSQL computes it from other columns; rotate those");
  }
  const auto type = col[0][0].as<std::string>();
  if (type == "bytea") {
    shape.kinds.push_back(ColumnKind::kBytea);
  } else if (type == "text" || type == "varchar" || type == "bpchar") {
    shape.kinds.push_back(ColumnKind::kText);
  } else {
    throw CatalogError(where + " is of type " + col[0][1].as<std::string>() +
                       ", which cannot hold a Fernet token (text, varchar, char or bytea expected)");
  }
  shape.columns.push_back(column);
}

TableShape resolve_relation(pqxx::transaction_base& tx, const Relation& rel, const std::vector<std::string>& columns) {
  TableShape shape;
  shape.schema = rel.schema;
  shape.table = rel.table;
  shape.estimated_rows = rel.estimated_rows;
  resolve_key(tx, rel, shape);
  for (const auto& column : columns) resolve_column(tx, rel, column, shape);
  return shape;
}

}  // namespace

std::vector<TableShape> resolve_table(pqxx::connection& conn, const std::string& schema, const std::string& table,
                                      const std::vector<std::string>& columns) {
  pqxx::read_transaction tx(conn);
  std::vector<TableShape> shapes;
  for (const Relation& rel : hierarchy(tx, schema, table)) {
    // Policies would hide rows from the keyset; and reading a child directly
    // would pass by the policies of the tables above it.
    if (rel.row_security) {
      throw CatalogError("row-level security applies to this role on " + rel.where +
                         ", so rekey would see only the rows its policies let through; run rekey as the table's "
                         "owner (with NO FORCE ROW LEVEL SECURITY) or as a role with BYPASSRLS");
    }
    if (rel.kind == "p") continue;  // a partitioned table stores no rows of its own
    if (rel.kind == "f") {
      throw CatalogError(rel.where + " is a foreign table: rotate it on the server that stores it");
    }
    shapes.push_back(resolve_relation(tx, rel, columns));
  }
  if (shapes.empty()) {
    throw CatalogError("table " + display_name(schema, table) + " is partitioned and has no partition to rotate");
  }
  return shapes;
}

Catalog::Catalog(const std::string& conninfo) : conn_(connect(conninfo)) {}
Catalog::~Catalog() = default;

std::vector<TableShape> Catalog::resolve_table(const std::string& schema, const std::string& table,
                                               const std::vector<std::string>& columns) {
  return db::resolve_table(*conn_, schema, table, columns);
}

}  // namespace rekey::db
