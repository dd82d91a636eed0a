#include "db/work_units.h"

#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/table_lock.h"
#include "migrate/port_error.h"

namespace rekey::db {
namespace {

constexpr int kFinishChunk = -1;  // a table's finish; its ranges are 0, 1, ...

// A unit marked done, or a run ended, commits only once the WAL is flushed up to
// it, and so every batch before it (they commit without waiting: PgTableWriter):
// a crash just after "done" cannot undo rows the operator was told are on the
// new key. 'off' is raised to 'local'; a stronger setting is kept.
void wait_for_wal_flush(pqxx::transaction_base& tx) {
  tx.exec(
      "SELECT pg_catalog.set_config('synchronous_commit', CASE pg_catalog.current_setting('synchronous_commit') "
      "WHEN 'off' THEN 'local' ELSE pg_catalog.current_setting('synchronous_commit') END, true)");
}

std::string interval_of(std::chrono::milliseconds d) { return std::to_string(d.count()) + " milliseconds"; }

UnitKind kind_from(const std::string& s) {
  if (s == "finish") return UnitKind::kFinish;
  if (s == "run") return UnitKind::kRun;
  return UnitKind::kRange;
}

std::optional<KeyValues> key_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return key_from_json(nlohmann::json::parse(f.c_str()));
}

std::optional<std::string> json_of(const std::optional<KeyValues>& key) {
  if (!key) return std::nullopt;
  return key_to_json(*key).dump();
}

// A row of RETURNING/SELECT kUnitColumns.
constexpr const char* kUnitColumns =
    "k.table_name, k.chunk, k.kind, k.lower_key::text, k.upper_key::text, k.last_key::text, k.epoch, k.rows_seen, "
    "k.counts::text";

WorkUnit unit_of(const pqxx::row& r) {
  WorkUnit u;
  u.table_name = r[0].as<std::string>();
  u.chunk = r[1].as<int>();
  u.kind = kind_from(r[2].as<std::string>());
  u.range.after = key_of(r[3]);
  u.range.up_to = key_of(r[4]);
  if (auto checkpoint = key_of(r[5])) u.range.after = std::move(checkpoint);
  u.epoch = r[6].as<std::int64_t>();
  u.rows_seen = r[7].as<std::int64_t>();
  const nlohmann::json all = nlohmann::json::parse(r[8].c_str());
  for (const auto& [column, counts] : all.items()) {
    u.counts.emplace_back(column, counts.get<ColumnCounts>());
  }
  return u;
}

// The units a worker may claim now: not done; to do, or held under a lease
// that ran out or by a session that is gone; a finish only once its table's
// ranges are done, the run's only once everything else is. (superseded_by is
// read through to_jsonb: `status` tallies units in a schema an older rekey
// made, which may lack it.)
constexpr const char* kClaimable =
    "k.run_id = $1 AND k.status <> 'done' "
    "AND NOT EXISTS (SELECT 1 FROM %3$s r WHERE r.id = k.run_id "
    "                AND pg_catalog.to_jsonb(r) ->> 'superseded_by' IS NOT NULL) "
    "AND (k.status = 'todo' OR k.lease_until < pg_catalog.now() "
    "     OR NOT %2$s) "
    "AND (k.kind = 'range' OR NOT EXISTS (SELECT 1 FROM %1$s r WHERE r.run_id = k.run_id AND r.status <> 'done' "
    "     AND ((k.kind = 'finish' AND r.kind = 'range' AND r.table_name = k.table_name) "
    "          OR (k.kind = 'run' AND r.kind <> 'run'))))";

// `sql` with %1$s the units' table, %2$s whether a unit's owner is alive, %3$s the runs table.
std::string with_table(std::string sql, const std::string& table) {
  const std::string runs = table.substr(0, table.rfind('.')) + ".runs";
  const std::pair<std::string, std::string> fills[] = {
      {"%1$s", table}, {"%2$s", worker_alive_sql("k.owner_lock")}, {"%3$s", runs}};
  for (const auto& [mark, text] : fills) {
    for (std::size_t pos = sql.find(mark); pos != std::string::npos; pos = sql.find(mark, pos)) {
      sql.replace(pos, mark.size(), text);
      pos += text.size();
    }
  }
  return sql;
}

}  // namespace

std::string kind_name(UnitKind kind) {
  switch (kind) {
    case UnitKind::kRange:
      return "range";
    case UnitKind::kFinish:
      return "finish";
    case UnitKind::kRun:
      return "run";
  }
  return "range";
}

WorkUnits::WorkUnits(const std::string& conninfo, std::string schema, std::int64_t run_id, Claimant claimant)
    : schema_(std::move(schema)), run_id_(run_id), claimant_(std::move(claimant)), session_(conninfo) {}

WorkUnits::~WorkUnits() = default;

std::string WorkUnits::table() const { return quote_ident(schema_) + ".chunks"; }

bool WorkUnits::table_exists() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return !tx.exec_params1("SELECT pg_catalog.to_regclass($1)", table())[0].is_null();
  });
}

bool WorkUnits::planned() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    return !tx.exec_params("SELECT 1 FROM " + table() + " WHERE run_id = $1 AND kind = 'run'", run_id_).empty();
  });
}

void WorkUnits::plan(const std::vector<TablePlan>& tables) {
  session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    // Planners of one run queue here; the first one plans, the others see it done.
    tx.exec_params("SELECT 1 FROM " + quote_ident(schema_) + ".runs WHERE id = $1 FOR UPDATE", run_id_);
    if (!tx.exec_params("SELECT 1 FROM " + table() + " WHERE run_id = $1 AND kind = 'run'", run_id_).empty()) return;
    const std::string insert = "INSERT INTO " + table() +
                               " (run_id, table_name, chunk, kind, lower_key, upper_key, position) "
                               "VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7) ON CONFLICT DO NOTHING";
    int position = 0;
    for (const TablePlan& t : tables) {
      ++position;
      if (!t.done) {
        std::optional<KeyValues> lower = t.after;
        for (std::size_t i = 0; i <= t.bounds.size(); ++i) {
          const std::optional<KeyValues> upper =
              i < t.bounds.size() ? std::optional<KeyValues>(t.bounds[i]) : std::nullopt;
          tx.exec_params(insert, run_id_, t.table_name, static_cast<int>(i), "range", json_of(lower), json_of(upper),
                         position);
          lower = upper;
        }
      }
      tx.exec_params(insert, run_id_, t.table_name, kFinishChunk, "finish", std::optional<std::string>(),
                     std::optional<std::string>(), position);
    }
    tx.exec_params(insert, run_id_, "", 0, "run", std::optional<std::string>(), std::optional<std::string>(),
                   position + 1);
    tx.commit();
  });
}

void WorkUnits::reopen_finishes() {
  session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec_params("UPDATE " + table() +
                       " SET status = 'todo', owner = NULL, owner_lock = NULL, outcome = NULL, updated_at = "
                       "pg_catalog.now() WHERE run_id = $1 AND kind <> 'range' AND status = 'done'",
                   run_id_);
    tx.commit();
  });
}

std::optional<WorkUnit> WorkUnits::claim() {
  return session_.run([&](pqxx::connection& conn) -> std::optional<WorkUnit> {
    pqxx::work tx(conn);
    const pqxx::result r = tx.exec_params(
        with_table("WITH c AS (SELECT k.table_name, k.chunk FROM %1$s k WHERE " + std::string(kClaimable) +
                       " ORDER BY k.position, k.kind = 'finish', k.chunk "
                       "LIMIT 1 FOR UPDATE OF k SKIP LOCKED) "
                       "UPDATE %1$s k SET status = 'running', owner = $2, owner_lock = $3, epoch = k.epoch + 1, "
                       "lease_until = pg_catalog.now() + $4::interval, claimed_at = pg_catalog.now(), "
                       "updated_at = pg_catalog.now() FROM c WHERE k.run_id = $1 AND k.table_name = c.table_name "
                       "AND k.chunk = c.chunk RETURNING " +
                       kUnitColumns,
                   table()),
        run_id_, claimant_.name, claimant_.liveness_token, interval_of(claimant_.lease));
    tx.commit();
    if (r.empty()) return std::nullopt;
    return unit_of(r[0]);
  });
}

bool WorkUnits::complete(const WorkUnit& unit, const nlohmann::json& outcome) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    wait_for_wal_flush(tx);
    const pqxx::result r = tx.exec_params(
        "UPDATE " + table() +
            " SET status = 'done', outcome = $6::jsonb, lease_until = NULL, updated_at = pg_catalog.now() "
            "WHERE run_id = $1 AND table_name = $2 AND chunk = $3 AND owner = $4 AND epoch = $5 AND status = 'running'",
        run_id_, unit.table_name, unit.chunk, claimant_.name, unit.epoch, outcome.dump());
    if (r.affected_rows() != 1) return false;
    if (unit.kind == UnitKind::kFinish) {
      tx.exec_params("UPDATE " + quote_ident(schema_) +
                         ".table_progress SET done = $3, updated_at = pg_catalog.now() WHERE run_id = $1 AND "
                         "table_name = $2",
                     run_id_, unit.table_name, outcome.value("completed", false));
    }
    if (unit.kind == UnitKind::kRun) {
      tx.exec_params("UPDATE " + quote_ident(schema_) +
                         ".runs SET status = $2, exit_code = $3, updated_at = pg_catalog.now(), "
                         "finished_at = pg_catalog.now() WHERE id = $1",
                     run_id_, outcome.at("status").get<std::string>(), outcome.at("exit_code").get<int>());
    }
    tx.commit();
    return true;
  });
}

bool WorkUnits::end_run(RunStatus status, int exit_code) {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    wait_for_wal_flush(tx);
    const pqxx::result r = tx.exec_params(
        with_table("UPDATE " + quote_ident(schema_) +
                       ".runs SET status = $2, exit_code = $3, updated_at = pg_catalog.now(), finished_at = "
                       "pg_catalog.now() WHERE id = $1 AND status = 'running' "
                       "AND NOT EXISTS (SELECT 1 FROM %1$s k WHERE k.run_id = $1 AND k.kind = 'run' AND k.status = "
                       "'done') AND NOT EXISTS (SELECT 1 FROM %1$s k WHERE k.run_id = $1 AND k.status = 'running' AND "
                       "k.lease_until >= pg_catalog.now() AND %2$s)",
                   table()),
        run_id_, std::string(to_string(status)), exit_code);
    tx.commit();
    return r.affected_rows() == 1;
  });
}

void WorkUnits::release(const WorkUnit& unit) {
  session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec_params("UPDATE " + table() +
                       " SET status = 'todo', owner = NULL, owner_lock = NULL, lease_until = NULL, "
                       "updated_at = pg_catalog.now() WHERE run_id = $1 AND table_name = $2 AND chunk = $3 "
                       "AND owner = $4 AND epoch = $5 AND status = 'running'",
                   run_id_, unit.table_name, unit.chunk, claimant_.name, unit.epoch);
    tx.commit();
  });
}

// One short transaction a unit. A unit whose row is locked is in the middle
// of a batch, which extends its lease itself: skipped, not lost.
std::vector<WorkUnit> WorkUnits::renew(const std::vector<WorkUnit>& held) {
  std::vector<WorkUnit> lost;
  for (const WorkUnit& unit : held) {
    // Whether the unit is still this worker's; run again after a reconnect, so it decides, not appends.
    const bool still_mine = session_.run([&](pqxx::connection& conn) {
      pqxx::work tx(conn);
      const pqxx::result row =
          tx.exec_params("SELECT owner = $4 AND epoch = $5 AND status = 'running' FROM " + table() +
                             " WHERE run_id = $1 AND table_name = $2 AND chunk = $3 "
                             "FOR UPDATE SKIP LOCKED",
                         run_id_, unit.table_name, unit.chunk, claimant_.name, unit.epoch);
      if (row.empty()) return true;  // locked: mid-batch, which extends the lease itself
      if (!row[0][0].as<bool>()) return false;
      tx.exec_params("UPDATE " + table() +
                         " SET lease_until = pg_catalog.now() + $4::interval, updated_at = pg_catalog.now() "
                         "WHERE run_id = $1 AND table_name = $2 AND chunk = $3",
                     run_id_, unit.table_name, unit.chunk, interval_of(claimant_.lease));
      tx.commit();
      return true;
    });
    if (!still_mine) lost.push_back(unit);
  }
  session_.run([&](pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec_params("UPDATE " + quote_ident(schema_) + ".runs SET updated_at = pg_catalog.now() WHERE id = $1", run_id_);
    tx.commit();
  });
  return lost;
}

UnitTally WorkUnits::tally() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    UnitTally t;
    for (const auto& row : tx.exec_params(
             "SELECT status, pg_catalog.count(*) FROM " + table() + " WHERE run_id = $1 GROUP BY status", run_id_)) {
      const auto status = row[0].as<std::string>();
      const auto n = row[1].as<std::int64_t>();
      (status == "todo" ? t.todo : status == "running" ? t.running : t.done) += n;
    }
    t.superseded =
        !tx.exec_params("SELECT 1 FROM " + quote_ident(schema_) +
                            ".runs r WHERE id = $1 AND pg_catalog.to_jsonb(r) ->> 'superseded_by' IS NOT NULL",
                        run_id_)
             .empty();
    return t;
  });
}

std::vector<WorkerLease> WorkUnits::leases() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    std::vector<WorkerLease> out;
    for (const auto& r :
         tx.exec_params("SELECT owner, table_name, chunk, kind, rows_seen, "
                        "EXTRACT(epoch FROM pg_catalog.now() - claimed_at)::float8, "
                        "EXTRACT(epoch FROM pg_catalog.now() - updated_at)::float8 FROM " +
                            table() +
                            " k WHERE run_id = $1 AND status = 'running' AND lease_until >= pg_catalog.now() "
                            "AND " +
                            worker_alive_sql("k.owner_lock") +
                            " "
                            "ORDER BY owner, table_name, chunk",
                        run_id_)) {
      out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<int>(), kind_from(r[3].as<std::string>()),
                     r[4].as<std::int64_t>(), r[5].as<double>(), r[6].as<double>()});
    }
    return out;
  });
}

std::vector<std::pair<std::string, nlohmann::json>> WorkUnits::finish_outcomes() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    std::vector<std::pair<std::string, nlohmann::json>> out;
    for (const auto& r : tx.exec_params("SELECT table_name, outcome::text FROM " + table() +
                                            " WHERE run_id = $1 AND kind = 'finish' AND status = 'done' "
                                            "AND outcome IS NOT NULL ORDER BY table_name",
                                        run_id_)) {
      out.emplace_back(r[0].as<std::string>(), nlohmann::json::parse(r[1].c_str()));
    }
    return out;
  });
}

void fence_unit(pqxx::transaction_base& tx, const std::string& schema, std::int64_t run_id, const WorkUnit& unit,
                const std::string& owner) {
  const pqxx::result r = tx.exec_params(
      "SELECT 1 FROM " + quote_ident(schema) +
          ".chunks k WHERE run_id = $1 AND table_name = $2 AND chunk = $3 AND owner = $4 AND epoch = $5 "
          "AND status = 'running' AND NOT EXISTS (SELECT 1 FROM " +
          quote_ident(schema) + ".runs r WHERE r.id = k.run_id AND r.superseded_by IS NOT NULL) FOR UPDATE OF k",
      run_id, unit.table_name, unit.chunk, owner, unit.epoch);
  if (r.empty()) {
    throw PortError(PortFailure::kLeaseLost, "the lease of " + kind_name(unit.kind) + " unit " +
                                                 std::to_string(unit.chunk) + " of " + unit.table_name +
                                                 " passed to another worker (or its run was superseded)");
  }
}

}  // namespace rekey::db
