#include "db/state_schema_ddl.h"

#include <pqxx/pqxx>
#include <string_view>

#include "common/identifier.h"
#include "db/sql_text.h"
#include "db/state_schema_sql.h"

namespace rekey::db {
namespace {

// `sql` without its "--" comments (the DDL has no "--" inside a string).
std::string without_comments(const std::string& sql) {
  std::string out;
  std::size_t from = 0;
  while (from < sql.size()) {
    std::size_t end = sql.find('\n', from);
    if (end == std::string::npos) end = sql.size();
    const std::string_view line(sql.data() + from, end - from);
    out.append(line.substr(0, line.find("--")));
    out += '\n';
    from = end + 1;
  }
  return out;
}

// Columns later versions added to the state tables, for a schema an older
// rekey created.
struct AddedColumn {
  const char* table;
  const char* column;
  const char* type;
};
constexpr AddedColumn kAddedColumns[] = {{"runs", "superseded_by", "bigint"},
                                         {"pending", "not_found_at", "timestamptz"},
                                         {"runs", "rollback_of", "bigint"},
                                         {"runs", "scope", "jsonb"},
                                         {"runs", "first_old_key", "text"}};

// Adds each missing column; looks first, so that a schema that has them all
// takes no lock beyond what reading the catalog takes.
void add_missing_columns(pqxx::work& tx, const std::string& schema) {
  for (const auto& added : kAddedColumns) {
    const std::string table = quote_ident(schema) + "." + quote_ident(added.table);
    const bool present = !tx.exec_params(
                                "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = "
                                "pg_catalog.to_regclass($1) AND attname = $2 AND NOT attisdropped",
                                table, added.column)
                              .empty();
    if (!present) tx.exec("ALTER TABLE " + table + " ADD COLUMN " + quote_ident(added.column) + " " + added.type);
  }
}

// True when every table of the state schema exists in `schema`.
bool all_tables_exist(pqxx::transaction_base& tx, const std::string& schema, const std::vector<std::string>& tables) {
  const auto present = tx.exec_params1(
                             "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY ($2::pg_catalog.text[])",
                             schema, text_array(tables))[0]
                           .as<std::size_t>();
  return present == tables.size();
}

}  // namespace

bool schema_exists_in(pqxx::transaction_base& tx, const std::string& schema) {
  return !tx.exec_params("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", schema).empty();
}

void create_or_upgrade_state_schema(pqxx::work& tx, const std::string& schema, const std::vector<std::string>& tables) {
  // The name goes into the DDL only outside comments (a comment is where a
  // newline in it would end the quoting), and it never holds a control
  // character: it cannot leave its quotes.
  check_no_control_characters(schema, "--state-schema");
  std::string ddl = without_comments(kStateSchemaSql);
  const std::string quoted = quote_ident(schema);
  for (std::size_t pos = ddl.find("__SCHEMA__"); pos != std::string::npos; pos = ddl.find("__SCHEMA__", pos)) {
    ddl.replace(pos, 10, quoted);
    pos += quoted.size();
  }
  // Two runners creating the schema at once would race on CREATE ... IF NOT EXISTS.
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('rekey state schema'))");
  // CREATE ... IF NOT EXISTS checks the CREATE privilege before it looks:
  // a schema an administrator created for rekey's role (sql/grants.sql)
  // must not need CREATE on the database, nor tables all present CREATE on it.
  if (!schema_exists_in(tx, schema)) tx.exec("CREATE SCHEMA " + quoted);
  if (!all_tables_exist(tx, schema, tables)) tx.exec(ddl);
  add_missing_columns(tx, schema);
}

}  // namespace rekey::db
