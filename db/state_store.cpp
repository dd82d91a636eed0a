#include "db/state_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"
#include "db/sql_text.h"
#include "db/state_schema_sql.h"
#include "db/table_lock.h"

namespace rekey::db {
namespace {

constexpr const char* kRunColumns =
    "id, targets, new_key_fingerprint, old_key_fingerprints, status, command, runner, "
    "to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), "
    "COALESCE(to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), ''), exit_code, superseded_by";

RunRecord to_run(const pqxx::row& r) {
  RunRecord run;
  run.id = r[0].as<std::int64_t>();
  run.targets = r[1].as<std::string>();
  run.new_key_fingerprint = r[2].as<std::string>();
  run.old_key_fingerprints = r[3].as<std::string>();
  run.status = run_status_from(r[4].as<std::string>());
  run.command = r[5].as<std::string>();
  run.runner = r[6].as<std::string>();
  run.started_at = r[7].as<std::string>();
  run.updated_at = r[8].as<std::string>();
  run.finished_at = r[9].as<std::string>();
  if (!r[10].is_null()) run.exit_code = r[10].as<int>();
  if (!r[11].is_null()) run.superseded_by = r[11].as<std::int64_t>();
  return run;
}

// A table's progress: its row of table_progress (what an older rekey, or a
// run before work units, recorded there) plus the rows seen and counts of
// its work units.
// A schema an older rekey made has no work units (status reads it as it is).
std::string progress_select(pqxx::transaction_base& tx, const std::string& schema) {
  const bool units_exist =
      !tx.exec_params1("SELECT pg_catalog.to_regclass($1)", quote_ident(schema) + ".chunks")[0].is_null();
  if (!units_exist) {
    return "SELECT p.table_name, p.last_key::text, p.done, p.rows_seen, p.estimated_rows, p.counts::text, '[]' FROM " +
           quote_ident(schema) + ".table_progress p ";
  }
  const std::string units = quote_ident(schema) + ".chunks c WHERE c.run_id = p.run_id AND c.table_name = p.table_name";
  return "SELECT p.table_name, p.last_key::text, p.done, p.rows_seen + COALESCE((SELECT pg_catalog.sum(c.rows_seen) "
         "FROM " +
         units +
         "), 0)::bigint, p.estimated_rows, p.counts::text, COALESCE((SELECT pg_catalog.json_agg(c.counts) FROM " +
         units + "), '[]')::text FROM " + quote_ident(schema) + ".table_progress p ";
}

void add_counts(TableProgress& p, const nlohmann::json& by_column) {
  for (const auto& [column, counts] : by_column.items()) {
    const auto c = counts.get<ColumnCounts>();
    auto it = std::find_if(p.counts.begin(), p.counts.end(), [&](const auto& e) { return e.first == column; });
    if (it == p.counts.end()) {
      p.counts.emplace_back(column, c);
    } else {
      it->second += c;
    }
  }
}

TableProgress to_progress(const pqxx::row& r) {
  TableProgress p;
  p.table_name = r[0].as<std::string>();
  if (!r[1].is_null()) p.last_key = key_from_json(nlohmann::json::parse(r[1].c_str()));
  p.done = r[2].as<bool>();
  p.rows_seen = r[3].as<std::int64_t>();
  p.estimated_rows = r[4].as<std::int64_t>();
  add_counts(p, nlohmann::json::parse(r[5].c_str()));
  const nlohmann::json units = nlohmann::json::parse(r[6].c_str());
  for (const auto& unit : units) add_counts(p, unit);
  return p;
}

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
                                         {"pending", "not_found_at", "timestamptz"}};

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

bool schema_exists_in(pqxx::transaction_base& tx, const std::string& schema) {
  return !tx.exec_params("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", schema).empty();
}

}  // namespace

const std::vector<std::string>& StateStore::table_names() {
  static const std::vector<std::string> names = {"runs", "table_progress", "failures", "pending", "chunks", "pace"};
  return names;
}

StateStore::StateStore(const std::string& conninfo, std::string schema)
    : schema_(std::move(schema)), session_(conninfo) {}

StateStore::~StateStore() = default;

namespace {
// True when every table of the state schema exists in `schema`.
bool all_tables_exist(pqxx::transaction_base& tx, const std::string& schema) {
  const auto present = tx.exec_params1(
                             "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY ($2::pg_catalog.text[])",
                             schema, text_array(StateStore::table_names()))[0]
                           .as<std::size_t>();
  return present == StateStore::table_names().size();
}
}  // namespace

void StateStore::ensure_schema() {
  return session_.run([&](pqxx::connection& conn) {
    // The name goes into the DDL only outside comments (a comment is where a
    // newline in it would end the quoting), and it never holds a control
    // character: it cannot leave its quotes.
    check_no_control_characters(schema_, "--state-schema");
    std::string ddl = without_comments(kStateSchemaSql);
    const std::string quoted = quote_ident(schema_);
    for (std::size_t pos = ddl.find("__SCHEMA__"); pos != std::string::npos; pos = ddl.find("__SCHEMA__", pos)) {
      ddl.replace(pos, 10, quoted);
      pos += quoted.size();
    }
    pqxx::work tx(conn);
    // Two runners creating the schema at once would race on CREATE ... IF NOT EXISTS.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('rekey state schema'))");
    // CREATE ... IF NOT EXISTS checks the CREATE privilege before it looks:
    // a schema an administrator created for rekey's role (sql/grants.sql)
    // must not need CREATE on the database, nor tables all present CREATE on it.
    if (!schema_exists_in(tx, schema_)) tx.exec("CREATE SCHEMA " + quoted);
    if (!all_tables_exist(tx, schema_)) tx.exec(ddl);
    add_missing_columns(tx, schema_);
    tx.commit();
  });
}

bool StateStore::schema_exists() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return schema_exists_in(tx, schema_);
  });
}

std::optional<RunRecord> StateStore::latest_run(const std::string& targets) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto r = tx.exec_params(std::string("SELECT ") + kRunColumns + " FROM " + quote_ident(schema_) +
                                      ".runs WHERE targets = $1 ORDER BY id DESC LIMIT 1",
                                  targets);
    return r.empty() ? std::optional<RunRecord>() : std::optional<RunRecord>(to_run(r[0]));
  });
}

std::optional<RunRecord> StateStore::run(std::int64_t id) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto r = tx.exec_params(
        std::string("SELECT ") + kRunColumns + " FROM " + quote_ident(schema_) + ".runs WHERE id = $1", id);
    return r.empty() ? std::optional<RunRecord>() : std::optional<RunRecord>(to_run(r[0]));
  });
}

std::vector<RunRecord> StateStore::runs(std::size_t limit) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto r = tx.exec_params(
        std::string("SELECT ") + kRunColumns + " FROM " + quote_ident(schema_) + ".runs ORDER BY id DESC LIMIT $1",
        static_cast<std::int64_t>(limit));
    std::vector<RunRecord> out;
    for (const auto& row : r) out.push_back(to_run(row));
    return out;
  });
}

std::vector<RunRecord> StateStore::unfinished_runs() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto r = tx.exec(std::string("SELECT ") + kRunColumns + " FROM " + quote_ident(schema_) +
                           ".runs WHERE status <> 'finished' AND superseded_by IS NULL ORDER BY id DESC");
    std::vector<RunRecord> out;
    for (const auto& row : r) out.push_back(to_run(row));
    return out;
  });
}

void StateStore::supersede(std::int64_t run_id, std::int64_t by) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec_params("UPDATE " + quote_ident(schema_) +
                       ".runs SET superseded_by = $2, status = CASE WHEN status = 'running' THEN 'stopped' "
                       "ELSE status END, updated_at = now() WHERE id = $1",
                   run_id, by);
    tx.commit();
  });
}

std::int64_t StateStore::create_run(const std::string& targets, const std::string& new_fp, const std::string& old_fps,
                                    const std::string& command, const std::string& runner) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    const auto r =
        tx.exec_params1("INSERT INTO " + quote_ident(schema_) +
                            ".runs (targets, new_key_fingerprint, old_key_fingerprints, status, command, runner) "
                            "VALUES ($1, $2, $3, 'running', $4, $5) RETURNING id",
                        targets, new_fp, old_fps, command, runner);
    tx.commit();
    return r[0].as<std::int64_t>();
  });
}

void StateStore::set_runner(std::int64_t run_id, const std::string& runner, const std::string& old_fps) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec_params("UPDATE " + quote_ident(schema_) +
                       ".runs SET runner = $2, old_key_fingerprints = $3, status = 'running', updated_at = now() "
                       "WHERE id = $1",
                   run_id, runner, old_fps);
    tx.commit();
  });
}

TableProgress StateStore::start_table(std::int64_t run_id, const TableShape& shape) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    const std::string t = quote_ident(schema_) + ".table_progress";
    tx.exec_params("INSERT INTO " + t +
                       " (run_id, table_name, estimated_rows) VALUES ($1, $2, $3) "
                       "ON CONFLICT (run_id, table_name) DO UPDATE SET estimated_rows = EXCLUDED.estimated_rows",
                   run_id, shape.display_name(), static_cast<std::int64_t>(shape.estimated_rows));
    const auto r = tx.exec_params1(progress_select(tx, schema_) + "WHERE p.run_id = $1 AND p.table_name = $2", run_id,
                                   shape.display_name());
    tx.commit();
    return to_progress(r);
  });
}

std::vector<TableProgress> StateStore::progress(std::int64_t run_id) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto r = tx.exec_params(progress_select(tx, schema_) + "WHERE p.run_id = $1 ORDER BY p.table_name", run_id);
    std::vector<TableProgress> out;
    for (const auto& row : r) out.push_back(to_progress(row));
    return out;
  });
}

std::vector<FailureRecord> StateStore::failures(std::int64_t run_id, std::size_t limit) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto r =
        tx.exec_params("SELECT table_name, column_name, primary_key, reason FROM " + quote_ident(schema_) +
                           ".failures WHERE run_id = $1 ORDER BY table_name, column_name, primary_key LIMIT $2",
                       run_id, static_cast<std::int64_t>(limit));
    std::vector<FailureRecord> out;
    for (const auto& row : r) {
      out.push_back(
          {row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>()});
    }
    return out;
  });
}

std::int64_t StateStore::failure_count(std::int64_t run_id) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return tx.exec_params1("SELECT count(*) FROM " + quote_ident(schema_) + ".failures WHERE run_id = $1", run_id)[0]
        .as<std::int64_t>();
  });
}

std::int64_t StateStore::pending_not_found(std::int64_t run_id) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return tx
        .exec_params1(
            "SELECT count(*) FROM " + quote_ident(schema_) + ".pending WHERE run_id = $1 AND not_found_at IS NOT NULL",
            run_id)[0]
        .as<std::int64_t>();
  });
}

// Added for `rekey status`.
std::vector<std::string> StateStore::locked_tables(const std::vector<std::string>& table_names) {
  return session_.run([&](pqxx::connection& conn) { return db::locked_tables(conn, table_names); });
}

}  // namespace rekey::db
