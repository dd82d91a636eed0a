#include "db/discovery_queries.h"

#include <fmt/format.h>

#include <algorithm>
#include <pqxx/pqxx>

#include "db/connection.h"
#include "db/identifier.h"
#include "db/sql_text.h"

namespace rekey::db {
namespace {

std::vector<std::string> read_values(const pqxx::result& result, ColumnKind kind) {
  std::vector<std::string> values;
  values.reserve(result.size());
  for (const auto& r : result) {
    if (r[0].is_null()) continue;
    if (kind == ColumnKind::kBytea) {
      values.push_back(pqxx::binarystring(r[0]).str());
    } else {
      values.emplace_back(r[0].c_str(), r[0].size());
    }
  }
  return values;
}

std::string select_sample(const CandidateColumn& c, bool tablesample, std::size_t limit) {
  const std::string col = quote_ident(c.column);
  return "SELECT " + col + " FROM " + quote_ident(c.schema) + "." + quote_ident(c.table) +
         (tablesample ? " TABLESAMPLE SYSTEM ($1::float8)" : "") + " WHERE " + col + " IS NOT NULL LIMIT " +
         std::to_string(limit);
}

}  // namespace

DiscoveryQueries::DiscoveryQueries(const std::string& conninfo) : conn_(connect(conninfo)) {}
DiscoveryQueries::~DiscoveryQueries() = default;

std::vector<std::string> DiscoveryQueries::missing_schemas(const std::vector<std::string>& schemas) {
  if (schemas.empty()) return {};
  pqxx::read_transaction tx(*conn_);
  const pqxx::result r = tx.exec_params(
      "SELECT s.name FROM unnest($1::text[]) WITH ORDINALITY AS s(name, ord) "
      "WHERE NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = s.name) ORDER BY s.ord",
      text_array(schemas));
  std::vector<std::string> out;
  for (const auto& row : r) out.push_back(row[0].as<std::string>());
  return out;
}

std::vector<CandidateColumn> DiscoveryQueries::list_candidate_columns(const std::vector<std::string>& schemas,
                                                                      const std::vector<std::string>& excluded) {
  pqxx::read_transaction tx(*conn_);
  const pqxx::result r = tx.exec_params(
      // The tables first; a partitioned table's size is that of its leaf partitions.
      "WITH rel AS (SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
      "c.relnamespace "
      "  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND NOT (n.nspname = ANY ($2::text[])) "
      "  AND (CASE WHEN cardinality($1::text[]) > 0 THEN n.nspname = ANY ($1::text[]) "
      "       ELSE n.nspname NOT IN ('pg_catalog', 'information_schema') "
      "            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' END) "
      "  AND has_schema_privilege(n.oid, 'USAGE')), "
      "size AS (SELECT rel.oid, "
      "  COALESCE(CASE WHEN bool_or(pc.reltuples < 0) THEN -1 ELSE sum(pc.reltuples) END, 0)::float8 AS tuples, "
      "  COALESCE(sum(GREATEST(pc.relpages, 0)), 0)::int8 AS pages FROM rel "
      "  LEFT JOIN LATERAL (SELECT rel.oid AS relid WHERE rel.relkind = 'r' UNION ALL "
      "    SELECT relid FROM pg_partition_tree(rel.oid) WHERE isleaf AND rel.relkind = 'p') AS leaf ON true "
      "  LEFT JOIN pg_class pc ON pc.oid = leaf.relid GROUP BY rel.oid) "
      "SELECT rel.nspname, rel.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
      "  COALESCE(bt.typname, t.typname), size.tuples, size.pages, "
      "  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel.oid AND i.indisprimary), "
      "  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel.oid AND i.indisprimary "
      "    AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])), "  // key columns, not INCLUDE ones
      "  a.attgenerated <> '' "
      "FROM rel JOIN size ON size.oid = rel.oid "
      "JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped "
      "JOIN pg_type t ON t.oid = a.atttypid "
      "LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
      "WHERE COALESCE(bt.typname, t.typname) IN ('text', 'varchar', 'bpchar', 'bytea') "
      "  AND has_column_privilege(rel.oid, a.attnum, 'SELECT') "
      "ORDER BY rel.nspname, rel.relname, a.attnum",
      text_array(schemas), text_array(excluded));
  std::vector<CandidateColumn> out;
  out.reserve(r.size());
  for (const auto& row : r) {
    CandidateColumn c;
    c.schema = row[0].as<std::string>();
    c.table = row[1].as<std::string>();
    c.column = row[2].as<std::string>();
    c.type = row[3].as<std::string>();
    c.kind = row[4].as<std::string>() == "bytea" ? ColumnKind::kBytea : ColumnKind::kText;
    c.estimated_rows = row[5].as<double>();
    c.pages = row[6].as<std::int64_t>();
    c.table_has_primary_key = row[7].as<bool>();
    c.in_primary_key = row[8].as<bool>();
    c.generated = row[9].as<bool>();
    out.push_back(std::move(c));
  }
  return out;
}

ColumnSample DiscoveryQueries::sample_column(const CandidateColumn& column, const SampleSettings& settings) {
  ColumnSample sample;
  const bool big = column.pages > settings.big_table_pages;
  if (big) {
    const double percent =
        std::min(100.0, 100.0 * static_cast<double>(settings.sample_pages) / static_cast<double>(column.pages));
    try {
      pqxx::read_transaction tx(*conn_);
      sample.values = read_values(tx.exec_params(select_sample(column, true, settings.limit), percent), column.kind);
    } catch (const pqxx::sql_error&) {
      // TABLESAMPLE is not possible on every relation; the plain scan below decides.
      sample.values.clear();
    }
    if (sample.values.size() >= settings.limit) return sample;
  }
  try {
    pqxx::read_transaction tx(*conn_);
    if (big) tx.exec(fmt::format("SET LOCAL statement_timeout = {}", settings.scan_timeout.count()));
    std::vector<std::string> scanned = read_values(tx.exec(select_sample(column, false, settings.limit)), column.kind);
    if (scanned.size() >= sample.values.size()) sample.values = std::move(scanned);
  } catch (const pqxx::sql_error& e) {
    if (!big || e.sqlstate() != "57014") throw;
    sample.cut_short = true;  // keep what TABLESAMPLE found
  }
  return sample;
}

}  // namespace rekey::db
