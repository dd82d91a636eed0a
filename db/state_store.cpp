#include "db/state_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"
#include "db/sql_text.h"
#include "db/state_schema_ddl.h"
#include "db/table_lock.h"

namespace rekey::db {
namespace {

constexpr const char* kRunColumns =
    "id, targets, new_key_fingerprint, old_key_fingerprints, status, command, runner, "
    "to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), "
    "COALESCE(to_char(finished_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), ''), exit_code, "
    // The columns later versions added, read through to_jsonb: a schema an
    // older rekey made (status reads it as it is) may lack them.
    "(pg_catalog.to_jsonb(r) ->> 'superseded_by')::bigint, (pg_catalog.to_jsonb(r) ->> 'rollback_of')::bigint, "
    "(pg_catalog.to_jsonb(r) -> 'scope')::text, "
    "COALESCE(pg_catalog.to_jsonb(r) ->> 'first_old_key', pg_catalog.split_part(old_key_fingerprints, ',', 1))";

nlohmann::json scope_json(const RunScope& scope) {
  return {{"columns", scope.columns}, {"discover", scope.discover}, {"exclude", scope.exclude}};
}

std::optional<RunScope> scope_from(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  const auto j = nlohmann::json::parse(f.c_str());
  if (!j.is_object()) return std::nullopt;
  RunScope scope;
  scope.columns = j.value("columns", std::vector<std::string>{});
  scope.discover = j.value("discover", false);
  scope.exclude = j.value("exclude", std::vector<std::string>{});
  return scope;
}

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
  if (!r[12].is_null()) run.rollback_of = r[12].as<std::int64_t>();
  run.scope = scope_from(r[13]);
  run.first_old_key = r[14].as<std::string>();
  return run;
}

// The runs the clause `rest` (WHERE ..., ORDER BY ...) selects, given `params`.
template <typename... Params>
std::vector<RunRecord> select_runs(pqxx::transaction_base& tx, const std::string& schema, const std::string& rest,
                                   const Params&... params) {
  std::vector<RunRecord> out;
  for (const auto& row : tx.exec_params(
           std::string("SELECT ") + kRunColumns + " FROM " + quote_ident(schema) + ".runs r " + rest, params...)) {
    out.push_back(to_run(row));
  }
  return out;
}

std::optional<RunRecord> first_of(std::vector<RunRecord> runs) {
  return runs.empty() ? std::nullopt : std::optional<RunRecord>(std::move(runs.front()));
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

}  // namespace

const std::vector<std::string>& StateStore::table_names() {
  static const std::vector<std::string> names = {"runs", "table_progress", "failures", "pending", "chunks", "pace"};
  return names;
}

StateStore::StateStore(const std::string& conninfo, std::string schema)
    : schema_(std::move(schema)), session_(conninfo) {}

StateStore::~StateStore() = default;

void StateStore::ensure_schema() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    create_or_upgrade_state_schema(tx, schema_, table_names());
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
    return first_of(select_runs(tx, schema_, "WHERE targets = $1 ORDER BY id DESC LIMIT 1", targets));
  });
}

std::optional<RunRecord> StateStore::run(std::int64_t id) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return first_of(select_runs(tx, schema_, "WHERE id = $1", id));
  });
}

std::vector<RunRecord> StateStore::runs(std::size_t limit) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return select_runs(tx, schema_, "ORDER BY id DESC LIMIT $1", static_cast<std::int64_t>(limit));
  });
}

std::vector<RunRecord> StateStore::unfinished_runs() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return select_runs(tx, schema_, "WHERE status <> 'finished' AND superseded_by IS NULL ORDER BY id DESC");
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

std::int64_t StateStore::create_run(const NewRun& run) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    const auto r = tx.exec_params1(
        "INSERT INTO " + quote_ident(schema_) +
            ".runs (targets, new_key_fingerprint, old_key_fingerprints, status, command, runner, scope, rollback_of, "
            "first_old_key) VALUES ($1, $2, $3, 'running', $4, $5, $6::jsonb, NULLIF($7::bigint, 0), "
            "pg_catalog.split_part($3, ',', 1)) RETURNING id",
        run.targets, run.new_fp, run.old_fps, run.command, run.runner, scope_json(run.scope).dump(),
        run.rollback_of.value_or(0));
    tx.commit();
    return r[0].as<std::int64_t>();
  });
}

std::vector<RunRecord> StateStore::runs_after(std::int64_t id) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return select_runs(tx, schema_, "WHERE id > $1 ORDER BY id DESC", id);
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
