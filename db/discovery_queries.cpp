#include "db/discovery_queries.h"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"
#include "db/sql_text.h"

namespace rekey::db {
namespace {

// The relations that store rows, in the schemas asked for ($1; empty: all
// user schemas).
constexpr const char* kScopeRelations =
    "rel AS (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "  WHERE c.relkind IN ('r', 'm', 'f') "
    "  AND (CASE WHEN cardinality($1::text[]) > 0 THEN n.nspname = ANY ($1::text[]) "
    "       ELSE n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' END))";

// The relations of the hierarchies of the tables named by $1 (schemas) and
// $2 (tables), pairwise: each table and everything that inherits from it
// (partitions included), less those that store no rows.
constexpr const char* kHierarchyRelations =
    "tree AS (SELECT c.oid FROM unnest($1::text[], $2::text[]) AS x(s, t) "
    "  JOIN pg_catalog.pg_namespace n ON n.nspname = x.s "
    "  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = x.t "
    "  UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid), "
    "rel AS (SELECT tree.oid FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.oid "
    "  WHERE c.relkind IN ('r', 'm', 'f'))";

// The primary key's key columns (never its INCLUDE columns) of relation c:
// the FROM and the WHERE of a subquery.
constexpr const char* kKeyColumnsFrom =
    "pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ";
constexpr const char* kKeyColumnsWhere = " WHERE i.indrelid = c.oid AND i.indisprimary AND k.ord <= i.indnkeyatts";

// The btree operators (strategies 1 to 5: <, <=, =, >=, >) of key column k of
// index i, from its operator class, schema-qualified: a JSON array.
constexpr const char* kKeyOperators =
    "SELECT json_agg('OPERATOR(' || pg_catalog.quote_ident(opn.nspname) || '.' || o.oprname || ')' "
    "ORDER BY ap.amopstrategy) FROM pg_catalog.pg_opclass oc "
    "JOIN pg_catalog.pg_amop ap ON ap.amopfamily = oc.opcfamily AND ap.amoplefttype = oc.opcintype "
    "  AND ap.amoprighttype = oc.opcintype AND ap.amopstrategy IN (1, 2, 3, 4, 5) "
    "JOIN pg_catalog.pg_operator o ON o.oid = ap.amopopr "
    "JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace "
    "WHERE oc.oid = i.indclass[k.ord::int - 1]";

// Every type resolved through its domains, however deep: base_of(oid, base).
constexpr const char* kTypeBases =
    "dom(oid, base, depth) AS (SELECT t.oid, t.oid, 0 FROM pg_catalog.pg_type t "
    "  UNION ALL SELECT dom.oid, t.typbasetype, dom.depth + 1 FROM dom "
    "  JOIN pg_catalog.pg_type t ON t.oid = dom.base WHERE t.typtype = 'd'), "
    "base_of AS (SELECT DISTINCT ON (oid) oid, base FROM dom ORDER BY oid, depth DESC)";

// The types that cannot hold a token (numbers, times, addresses, names of at
// most 63 bytes, ...): every other type can, and its columns are read as text.
constexpr const char* kNoTokenTypes =
    "('int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'money', 'oid', 'xid', 'xid8', 'cid', 'tid', "
    "'bool', 'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'interval', 'uuid', 'inet', 'cidr', "
    "'macaddr', 'macaddr8', 'bit', 'varbit', 'char', 'name', 'point', 'line', 'lseg', 'box', 'path', "
    "'polygon', 'circle', 'pg_lsn', 'txid_snapshot', 'pg_snapshot', 'int2vector', 'oidvector', 'aclitem', "
    "'regclass', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regtype', 'regconfig', "
    "'regdictionary', 'regnamespace', 'regrole', 'regcollation')";

// One row per candidate column of the relations in `rel`; see column_of().
std::string scope_select() {
  return std::string(
             "SELECT n.nspname, c.relname, c.relkind::text, "
             "  CASE WHEN c.relkind = 'r' THEN pg_catalog.row_security_active(c.oid) ELSE false END, "
             "  c.reltuples::float8, "
             "  (SELECT COALESCE(json_agg(json_build_array(ka.attname, "
             "     pg_catalog.format_type(ka.atttypid, ka.atttypmod), (") +
         kKeyOperators + ")) ORDER BY k.ord), '[]')::text FROM " + kKeyColumnsFrom +
         "JOIN pg_catalog.pg_attribute ka ON ka.attrelid = c.oid AND ka.attnum = k.attnum" + kKeyColumnsWhere +
         "), "
         "  a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), b.typname::text, "
         "  d.typname IN ('text', 'varchar', 'bpchar', 'bytea'), a.attgenerated <> '', "
         "  EXISTS (SELECT 1 FROM " +
         kKeyColumnsFrom + kKeyColumnsWhere +
         " AND k.attnum = a.attnum), "
         // Readable: the column, and what keys its rows (the key columns, or the whole table for ctid).
         "  pg_catalog.has_schema_privilege(n.oid, 'USAGE') "
         "    AND pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT') "
         "    AND CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
         "      THEN NOT EXISTS (SELECT 1 FROM " +
         kKeyColumnsFrom + kKeyColumnsWhere +
         " AND NOT pg_catalog.has_column_privilege(c.oid, k.attnum, 'SELECT')) "
         "      ELSE pg_catalog.has_table_privilege(c.oid, 'SELECT') END, "
         // Searchable as text: all but arrays of bytea (their text form is hex).
         "  NOT (b.typcategory = 'A' AND e.typname = 'bytea') "
         "FROM rel JOIN pg_catalog.pg_class c ON c.oid = rel.oid "
         "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
         "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
         "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
         "JOIN pg_catalog.pg_type d ON d.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
         "JOIN base_of bo ON bo.oid = a.atttypid JOIN pg_catalog.pg_type b ON b.oid = bo.base "
         "LEFT JOIN base_of eo ON eo.oid = b.typelem AND b.typcategory = 'A' "
         "LEFT JOIN pg_catalog.pg_type e ON e.oid = eo.base "
         "WHERE NOT (COALESCE(e.typname, b.typname) IN " +
         kNoTokenTypes +
         " OR COALESCE(e.typtype, b.typtype) IN ('e', 'p')) "
         "ORDER BY n.nspname, c.relname, a.attnum";
}

RelationKind relation_kind_of(const std::string& relkind) {
  if (relkind == "m") return RelationKind::kMaterializedView;
  if (relkind == "f") return RelationKind::kForeignTable;
  return RelationKind::kTable;
}

ScopeColumn column_of(const pqxx::row& r) {
  ScopeColumn c;
  c.name = r[6].as<std::string>();
  c.type = r[7].as<std::string>();
  c.kind = r[8].as<std::string>() == "bytea" ? ColumnKind::kBytea : ColumnKind::kText;
  c.rotatable_type = r[9].as<bool>();
  c.generated = r[10].as<bool>();
  c.in_key = r[11].as<bool>();
  c.readable = r[12].as<bool>();
  c.searchable = r[13].as<bool>();
  return c;
}

ScopeRelation relation_of(const pqxx::row& r) {
  ScopeRelation rel;
  rel.schema = r[0].as<std::string>();
  rel.table = r[1].as<std::string>();
  rel.kind = relation_kind_of(r[2].as<std::string>());
  rel.row_security = r[3].as<bool>();
  rel.estimated_rows = r[4].as<double>();
  for (const auto& key : nlohmann::json::parse(r[5].c_str())) {
    rel.key_columns.push_back(key.at(0).get<std::string>());
    rel.key_types.push_back(key.at(1).get<std::string>());
    const nlohmann::json& ops = key.at(2);
    if (ops.is_array() && ops.size() == 5) {
      rel.key_operators.push_back({ops[0].get<std::string>(), ops[1].get<std::string>(), ops[2].get<std::string>(),
                                   ops[3].get<std::string>(), ops[4].get<std::string>()});
    }
  }
  // Without a btree ordering for every key column, none (only a census reads it).
  if (rel.key_operators.size() != rel.key_columns.size()) rel.key_operators.clear();
  return rel;
}

}  // namespace

TableShape ScopeRelation::shape(ValuePolicy policy) const {
  TableShape s;
  s.schema = schema;
  s.table = table;
  s.key_columns = key_columns;
  s.key_types = key_types;
  s.key_operators = key_operators;
  s.estimated_rows = estimated_rows;
  for (const auto& c : columns) {
    s.columns.push_back(c.name);
    s.kinds.push_back(c.kind);
    s.policies.push_back(policy);
  }
  return s;
}

DiscoveryQueries::DiscoveryQueries(const std::string& conninfo) : conn_(connect(conninfo)) {}
DiscoveryQueries::~DiscoveryQueries() = default;

std::vector<std::string> DiscoveryQueries::missing_schemas(const std::vector<std::string>& schemas) {
  if (schemas.empty()) return {};
  pqxx::read_transaction tx(*conn_);
  const pqxx::result r = tx.exec_params(
      "SELECT s.name FROM unnest($1::text[]) WITH ORDINALITY AS s(name, ord) "
      "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = s.name) ORDER BY s.ord",
      text_array(schemas));
  std::vector<std::string> out;
  for (const auto& row : r) out.push_back(row[0].as<std::string>());
  return out;
}

std::vector<ScopeRelation> DiscoveryQueries::list(const std::string& relations_cte,
                                                  const std::vector<std::string>& params) {
  pqxx::read_transaction tx(*conn_);
  const pqxx::result r = tx.exec_params("WITH RECURSIVE " + relations_cte + ", " + kTypeBases + " " + scope_select(),
                                        pqxx::prepare::make_dynamic_params(params));
  std::vector<ScopeRelation> out;
  for (const auto& row : r) {
    if (out.empty() || out.back().schema != row[0].c_str() || out.back().table != row[1].c_str()) {
      out.push_back(relation_of(row));
    }
    out.back().columns.push_back(column_of(row));
  }
  return out;
}

std::vector<ScopeRelation> DiscoveryQueries::list_scope(const std::vector<std::string>& schemas) {
  return list(kScopeRelations, {text_array(schemas)});
}

std::vector<ScopeRelation> DiscoveryQueries::list_hierarchies(
    const std::vector<std::pair<std::string, std::string>>& tables) {
  std::vector<std::string> schemas;
  std::vector<std::string> names;
  for (const auto& [schema, table] : tables) {
    schemas.push_back(schema);
    names.push_back(table);
  }
  return list(kHierarchyRelations, {text_array(schemas), text_array(names)});
}

std::string DiscoveryQueries::relation_kind(const std::string& schema, const std::string& table) {
  pqxx::read_transaction tx(*conn_);
  const pqxx::result r = tx.exec_params(
      "SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' "
      "WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' "
      "WHEN 'i' THEN 'index' ELSE 'relation' END "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2",
      schema, table);
  return r.empty() ? std::string() : r[0][0].as<std::string>();
}

std::vector<std::pair<std::int64_t, std::int64_t>> DiscoveryQueries::count_token_values(const TableShape& shape,
                                                                                        const TokenFilter& strong,
                                                                                        const TokenFilter& weak) {
  std::string sql = "SELECT ";
  for (std::size_t c = 0; c < shape.columns.size(); ++c) {
    const TableShape one = shape.column_shape(c);
    const std::string is_strong = holds_token_sign(one, strong, "s");
    sql += (c > 0 ? ", " : "") + std::string("count(*) FILTER (WHERE ") + is_strong + "), count(*) FILTER (WHERE " +
           holds_token_sign(one, weak, "s") + " AND NOT " + is_strong + ")";
  }
  sql += " FROM " + only_relation(shape) + " AS s";
  pqxx::read_transaction tx(*conn_);
  const pqxx::row r = tx.exec1(sql);
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (std::size_t c = 0; c < shape.columns.size(); ++c) {
    out.emplace_back(r[static_cast<int>(2 * c)].as<std::int64_t>(), r[static_cast<int>(2 * c + 1)].as<std::int64_t>());
  }
  return out;
}

std::vector<std::string> DiscoveryQueries::token_values(const TableShape& shape, const TokenFilter& filter,
                                                        std::size_t limit) {
  const std::string column = "s." + quote_ident(shape.columns.at(0));
  const bool bytea = shape.kinds.at(0) == ColumnKind::kBytea;
  const std::string sql = "SELECT " + column + (bytea ? "" : "::pg_catalog.text") + " FROM " + only_relation(shape) +
                          " AS s WHERE " + holds_token_sign(shape, filter, "s") +
                          (limit > 0 ? " LIMIT " + std::to_string(limit) : "");
  pqxx::read_transaction tx(*conn_);
  std::vector<std::string> values;
  for (const auto& row : tx.exec(sql)) {
    values.push_back(bytea ? pqxx::binarystring(row[0]).str() : std::string(row[0].c_str(), row[0].size()));
  }
  return values;
}

}  // namespace rekey::db
