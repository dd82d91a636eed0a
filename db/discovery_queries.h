// Catalog listing and value sampling for `rekey discover`. Read-only: every
// query runs in its own READ ONLY transaction and nothing is ever written.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "db/pqxx_fwd.h"
#include "migrate/table_port.h"

namespace rekey::db {

// A column that could hold a Fernet token: text, varchar, char or bytea (or a
// domain over one of them).
struct CandidateColumn {
  std::string schema;  // exactly as in the catalog
  std::string table;
  std::string column;
  std::string type;  // format_type(), e.g. "character varying(255)"
  ColumnKind kind = ColumnKind::kText;
  double estimated_rows = 0;  // pg_class.reltuples (of the leaf partitions); -1: never analyzed
  std::int64_t pages = 0;     // pg_class.relpages (of the leaf partitions); 0 when never analyzed
  bool table_has_primary_key = false;
  bool in_primary_key = false;
  bool generated = false;  // computed by PostgreSQL from other columns
};

struct SampleSettings {
  std::size_t limit = 200;                        // non-NULL values wanted
  std::int64_t big_table_pages = 8192;            // above this, sample pages with TABLESAMPLE SYSTEM first
  std::int64_t sample_pages = 1024;               // about this many pages per TABLESAMPLE
  std::chrono::milliseconds scan_timeout{10000};  // bound on the plain LIMIT scan of a big table
};

struct ColumnSample {
  std::vector<std::string> values;  // non-NULL values; bytea as raw bytes
  bool cut_short = false;           // the scan hit scan_timeout; values are what TABLESAMPLE found
};

// Owns one connection; use from one thread at a time.
class DiscoveryQueries {
 public:
  explicit DiscoveryQueries(const std::string& conninfo);
  ~DiscoveryQueries();

  // The schemas among `schemas` that do not exist (or are not visible).
  std::vector<std::string> missing_schemas(const std::vector<std::string>& schemas);

  // Every candidate column of every ordinary or partitioned table (partitions
  // are read through their parent) whose column the current user may SELECT.
  // `schemas`: only these; empty: all but pg_catalog, information_schema,
  // pg_toast*, pg_temp*. Schemas in `excluded` are always left out. Ordered by
  // schema, table, column position.
  std::vector<CandidateColumn> list_candidate_columns(const std::vector<std::string>& schemas,
                                                      const std::vector<std::string>& excluded);

  // Up to settings.limit non-NULL values of `column`: `WHERE col IS NOT NULL
  // LIMIT n`, which stops as soon as n values are found, so a sparse column is
  // still found without reading the whole table. For a big table a TABLESAMPLE
  // of about sample_pages pages comes first; only if it finds too few values
  // is the table scanned, under scan_timeout.
  ColumnSample sample_column(const CandidateColumn& column, const SampleSettings& settings);

 private:
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace rekey::db
