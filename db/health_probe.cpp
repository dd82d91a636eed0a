#include "db/health_probe.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/chunk_plan.h"
#include "db/connection.h"
#include "db/sql_arrays.h"
#include "db/sql_text.h"

namespace rekey::db {
namespace {

constexpr std::size_t kKeysPerTarget = 16;

// Other sessions (never rekey's, whose connections all say application_name
// 'rekey'): those that ran something in the last second; those running a
// statement on a core or on the disks now (not sleeping, not waiting for a
// lock, a client or another process); and those waiting on a lock or on WAL.
// Their state is visible to a role with pg_read_all_stats (or a superuser)
// only. Then the WAL position, forced checkpoints, the standbys' replay lag,
// and any anti-wraparound autovacuum on a target ($1: their names). The
// forced checkpoints are read by name from the row (NULL where the column
// moved, as in PostgreSQL 17).
constexpr const char* kSignals =
    "WITH others AS (SELECT a.state, a.state_change, a.wait_event_type, a.wait_event "
    "  FROM pg_catalog.pg_stat_activity AS a WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend' "
    "  AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() "
    "  AND a.application_name OPERATOR(pg_catalog.<>) 'rekey'), "
    // Physical standbys: a logical replication walsender is connected to a database.
    "physical AS (SELECT r.replay_lag, r.replay_lsn FROM pg_catalog.pg_stat_replication AS r "
    "  JOIN pg_catalog.pg_stat_activity AS w USING (pid) WHERE w.datid IS NULL) "
    "SELECT (SELECT pg_catalog.count(*) FROM others WHERE state OPERATOR(pg_catalog.=) 'active' "
    "          OR state_change OPERATOR(pg_catalog.>) (pg_catalog.clock_timestamp() "
    "             OPERATOR(pg_catalog.-) '1 second'::pg_catalog.interval)), "
    "  pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'), "
    "  (SELECT pg_catalog.count(*) FROM others WHERE state OPERATOR(pg_catalog.=) 'active' "
    "          AND (wait_event_type IS NULL OR wait_event_type OPERATOR(pg_catalog.=) ANY "
    "('{IO,LWLock}'::pg_catalog.text[]))), "
    "  (SELECT pg_catalog.count(*) FROM others WHERE state OPERATOR(pg_catalog.=) 'active' "
    "          AND (wait_event_type OPERATOR(pg_catalog.=) 'Lock' "
    "               OR wait_event OPERATOR(pg_catalog.=) ANY ('{WALWrite,WALSync,WALInsert}'::pg_catalog.text[]))), "
    "  pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::pg_catalog.float8, "
    "  (SELECT (pg_catalog.to_jsonb(b) OPERATOR(pg_catalog.->>) 'checkpoints_req')::pg_catalog.int8 "
    "     FROM pg_catalog.pg_stat_bgwriter AS b), "
    "  (SELECT COALESCE(pg_catalog.max(pg_catalog.date_part('epoch', r.replay_lag)), 0)::pg_catalog.float8 "
    "     FROM physical AS r), "
    "  (SELECT COALESCE(pg_catalog.max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), "
    "          r.replay_lsn)), 0)::pg_catalog.float8 FROM physical AS r), "
    "  (SELECT pg_catalog.string_agg(v.relid::pg_catalog.regclass::pg_catalog.text, ', ') "
    "     FROM pg_catalog.pg_stat_progress_vacuum AS v JOIN pg_catalog.pg_stat_activity AS a USING (pid) "
    "    WHERE v.relid OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.to_regclass(n)::pg_catalog.oid "
    "                                              FROM pg_catalog.unnest($1::pg_catalog.text[]) AS n) "
    "      AND a.query OPERATOR(pg_catalog.~~) '%(to prevent wraparound)%')";

// About a millisecond of one core's work on the server, and nothing else.
constexpr const char* kCpuSlice = "SELECT pg_catalog.sum(i) FROM pg_catalog.generate_series(1, 20000) AS i";

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

HealthProbe::HealthProbe(std::string conninfo, std::string state_schema, std::int64_t run_id, std::string worker,
                         std::vector<TableShape> targets)
    : conninfo_(std::move(conninfo)),
      state_schema_(std::move(state_schema)),
      run_id_(run_id),
      worker_(std::move(worker)),
      targets_(std::move(targets)),
      keys_(targets_.size()) {
  std::vector<std::string> names;
  for (const auto& t : targets_) names.push_back(quote_ident(t.schema) + "." + quote_ident(t.table));
  target_names_ = text_array(names);
}

HealthProbe::~HealthProbe() = default;

pqxx::connection& HealthProbe::open() {
  if (!conn_ || !conn_->is_open()) {
    conn_ = connect(conninfo_);
    // A probe waits for nothing long: a lock held on a target, or a stuck
    // server, fails the sample instead of holding up the keeper.
    conn_->set_variable("statement_timeout", "'2s'");
    conn_->set_variable("lock_timeout", "'1s'");
  }
  return *conn_;
}

const std::vector<KeyValues>& HealthProbe::keys_of(pqxx::connection& conn, std::size_t target) {
  if (!keys_[target]) {
    ChunkPlanSettings few;
    few.rows_per_chunk = std::numeric_limits<std::size_t>::max();
    few.min_chunks = kKeysPerTarget;
    few.min_rows_per_chunk = 1;
    keys_[target] = plan_chunk_bounds(conn, targets_[target], KeyRange{}, few);
  }
  return *keys_[target];
}

void HealthProbe::read_a_row(pqxx::connection& conn) {
  if (targets_.empty()) return;
  const std::size_t i = rng_() % targets_.size();
  const TableShape& t = targets_[i];
  const std::vector<KeyValues>& keys = keys_of(conn, i);
  pqxx::read_transaction tx(conn);
  if (keys.empty()) {  // a small table, or one without a primary key
    tx.exec("SELECT 1 FROM " + only_relation(t) + " AS t LIMIT 1");
    return;
  }
  const KeyValues& key = keys[rng_() % keys.size()];
  // Only the key is named: a role granted SELECT on some columns may run it.
  tx.exec_params("SELECT 1 FROM " + only_relation(t) + " AS t" + join_keys(t, "t", 1),
                 pqxx::prepare::make_dynamic_params(key_arrays(t, {key})));
}

void HealthProbe::write_pace(pqxx::connection& conn, const Pace& pace, double probe_ms, double baseline_ms) {
  // As text: libpqxx 6.4 trips GCC's maybe-uninitialized on an optional<double>.
  const std::optional<std::string> rate =
      std::isinf(pace.rate) ? std::nullopt : std::optional<std::string>(std::to_string(pace.rate));
  pqxx::work tx(conn);
  tx.exec_params(
      "INSERT INTO " + quote_ident(state_schema_) +
          ".pace AS p (run_id, worker, rate, paused, reason, probe_ms, baseline_ms) "
          "VALUES ($1, $2, $3::pg_catalog.float8, $4, $5, $6, $7) ON CONFLICT (run_id, worker) DO UPDATE SET "
          "rate = EXCLUDED.rate, paused = EXCLUDED.paused, reason = EXCLUDED.reason, "
          "probe_ms = EXCLUDED.probe_ms, baseline_ms = EXCLUDED.baseline_ms, probed_at = pg_catalog.now()",
      run_id_, worker_, rate, pace.paused, pace.reason, probe_ms, baseline_ms);
  tx.commit();
}

void HealthProbe::read_signals(pqxx::connection& conn, HealthSample& s) {
  pqxx::nontransaction tx(conn);
  const pqxx::row r = tx.exec_params1(kSignals, target_names_);
  s.app_sessions = r[0].as<int>();
  s.sessions_visible = r[1].as<bool>();
  s.busy_sessions = r[2].as<int>();
  s.waiting_sessions = r[3].as<int>();
  s.wal_bytes = r[4].as<double>();
  s.forced_checkpoints = r[5].is_null() ? 0 : r[5].as<std::int64_t>();
  s.replica_lag_s = r[6].as<double>();
  s.replica_lag_bytes = r[7].as<double>();
  if (!r[8].is_null()) s.wraparound_vacuum = r[8].as<std::string>();
}

HealthSample HealthProbe::sample(const Pace& pace, double baseline_ms) {
  pqxx::connection& conn = open();
  HealthSample s;
  const auto t = std::chrono::steady_clock::now();
  read_a_row(conn);
  // The write of the probe before this one: this one's latency is known only after it.
  write_pace(conn, pace, last_probe_ms_, baseline_ms);
  s.probe_ms = ms_since(t);
  last_probe_ms_ = s.probe_ms;
  const auto cpu = std::chrono::steady_clock::now();
  pqxx::nontransaction(conn).exec(kCpuSlice);
  s.cpu_probe_ms = ms_since(cpu);
  read_signals(conn, s);
  return s;
}

std::vector<WorkerPace> worker_paces(const std::string& conninfo, const std::string& state_schema,
                                     std::int64_t run_id) {
  auto conn = connect(conninfo);
  pqxx::read_transaction tx(*conn);
  const std::string table = quote_ident(state_schema) + ".pace";
  std::vector<WorkerPace> out;
  if (tx.exec_params1("SELECT pg_catalog.to_regclass($1) IS NOT NULL", table)[0].as<bool>() == false) return out;
  for (const auto& r :
       tx.exec_params("SELECT worker, rate, paused, reason, probe_ms, baseline_ms, "
                      "EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) probed_at)::pg_catalog.float8 FROM " +
                          table +
                          " WHERE run_id = $1 AND probed_at > pg_catalog.now() OPERATOR(pg_catalog.-) '1 "
                          "minute'::pg_catalog.interval "
                          "ORDER BY worker",
                      run_id)) {
    WorkerPace p;
    p.worker = r[0].as<std::string>();
    if (!r[1].is_null()) p.rate = r[1].as<double>();
    if (!r[2].is_null()) p.paused = r[2].as<std::string>();
    p.reason = r[3].as<std::string>();
    p.probe_ms = r[4].is_null() ? 0 : r[4].as<double>();
    p.baseline_ms = r[5].is_null() ? 0 : r[5].as<double>();
    p.age_seconds = r[6].as<double>();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace rekey::db
