#include "db/catalog.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "db/connection.h"
#include "db/identifier.h"

namespace rekey::db {
namespace {

// The btree operators of a primary key's column, from the operator class of
// its index (a primary key's index always uses the column type's default
// class, whose order ORDER BY follows too).
KeyOperators key_operators(pqxx::transaction_base& tx, std::uint32_t opclass, const std::string& where) {
  const pqxx::result r = tx.exec_params(
      "SELECT ap.amopstrategy, n.nspname, o.oprname FROM pg_opclass oc "
      "JOIN pg_amop ap ON ap.amopfamily = oc.opcfamily AND ap.amoplefttype = oc.opcintype "
      "AND ap.amoprighttype = oc.opcintype AND ap.amopstrategy IN (3, 4, 5) "
      "JOIN pg_operator o ON o.oid = ap.amopopr JOIN pg_namespace n ON n.oid = o.oprnamespace "
      "WHERE oc.oid = $1 ORDER BY ap.amopstrategy",
      opclass);
  if (r.size() != 3) throw CatalogError(where + " has no btree ordering rekey can page on");
  const auto op = [&](int row) {
    return "OPERATOR(" + quote_ident(r[row][1].as<std::string>()) + "." + r[row][2].as<std::string>() + ")";
  };
  return KeyOperators{op(0), op(1), op(2)};
}

}  // namespace

TableShape resolve_table(pqxx::connection& conn, const std::string& schema, const std::string& table,
                         const std::vector<std::string>& columns) {
  TableShape shape;
  shape.schema = schema;
  shape.table = table;
  const std::string name = shape.display_name();
  pqxx::read_transaction tx(conn);
  const pqxx::result rel = tx.exec_params(
      "SELECT c.oid, GREATEST(c.reltuples, 0)::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
      schema, table);
  if (rel.empty()) throw CatalogError("table " + name + " does not exist (or is not visible to this user)");
  const auto oid = rel[0][0].as<std::uint32_t>();
  shape.estimated_rows = rel[0][1].as<double>();

  const pqxx::result pk = tx.exec_params(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), i.indclass[k.ord::int - 1] FROM pg_index i "
      "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      // Only the key columns: INCLUDE columns ride along in the index but do
      // not identify a row (and may be NULL).
      "WHERE i.indrelid = $1 AND i.indisprimary AND k.ord <= i.indnkeyatts ORDER BY k.ord",
      oid);
  if (pk.empty())
    throw CatalogError("table " + name + " has no primary key; rekey needs one to page and to write safely");
  for (const auto& r : pk) {
    shape.key_columns.push_back(r[0].as<std::string>());
    shape.key_types.push_back(r[1].as<std::string>());
    shape.key_operators.push_back(
        key_operators(tx, r[2].as<std::uint32_t>(),
                      "table " + name + ", key column " + quote_ident_if_needed(shape.key_columns.back())));
  }

  for (const auto& column : columns) {
    const std::string where = "table " + name + ", column " + quote_ident_if_needed(column);
    if (std::find(shape.columns.begin(), shape.columns.end(), column) != shape.columns.end()) {
      throw CatalogError(where + " is named twice");
    }
    if (std::find(shape.key_columns.begin(), shape.key_columns.end(), column) != shape.key_columns.end()) {
      throw CatalogError(where + " is part of the primary key; rekey does not rewrite key columns");
    }
    const pqxx::result col = tx.exec_params(
        "SELECT COALESCE(bt.typname, t.typname), format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
        "WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        oid, column);
    if (col.empty()) throw CatalogError(where + " does not exist");
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
  return shape;
}

}  // namespace rekey::db
