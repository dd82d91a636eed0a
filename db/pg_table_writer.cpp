#include "db/pg_table_writer.h"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "common/identifier.h"
#include "db/connection.h"
#include "db/sql_text.h"

namespace rekey::db {
namespace {

// Keys as a text[] literal of their JSON arrays (the pending table's form).
std::string json_keys(const std::vector<KeyValues>& keys) {
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(key_to_json(k).dump());
  return text_array(out);
}

std::string interval_ms(std::chrono::milliseconds ms) { return "'" + std::to_string(ms.count()) + "ms'"; }

constexpr const char* kSkipTriggers = "SET LOCAL session_replication_role = replica";

}  // namespace

bool can_skip_triggers(const std::string& conninfo) {
  auto conn = connect(conninfo);
  pqxx::work tx(*conn);
  try {
    tx.exec(kSkipTriggers);
  } catch (const pqxx::insufficient_privilege&) {
    return false;
  }
  return true;  // rolled back: nothing was written
}

PgTableWriter::PgTableWriter(std::string conninfo, TableShape shape, WriterSettings settings,
                             std::vector<ColumnCounts> totals, UnitLease lease)
    : shape_(std::move(shape)),
      settings_(std::move(settings)),
      totals_(std::move(totals)),
      lease_(std::move(lease)),
      update_sql_(build_update(shape_, RowLocks::kWait)),
      update_skip_locked_sql_(build_update(shape_, RowLocks::kSkipLocked)),
      session_(std::move(conninfo)) {
  totals_.resize(shape_.columns.size());
}

PgTableWriter::~PgTableWriter() = default;

std::string PgTableWriter::counts_json(const std::vector<ColumnCounts>& totals) const {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t c = 0; c < shape_.columns.size(); ++c) {
    j[shape_.columns[c]] = totals[c];
  }
  return j.dump();
}

std::vector<std::size_t> PgTableWriter::write(const BatchWrite& batch) {
  return session_.run([&](pqxx::connection& conn) { return write_once(conn, batch); });
}

// Settled pending rows go first, so that a row lost again is added back after
// the update; rows gone when read again stay listed, as not found.
std::vector<std::size_t> PgTableWriter::write_once(pqxx::connection& conn, const BatchWrite& batch) {
  std::vector<ColumnCounts> totals = totals_;
  pqxx::work tx(conn);
  set_write_limits(tx);
  fence_unit(tx, settings_.state_schema, settings_.run_id, lease_.unit, lease_.owner);
  settle_pending(tx, batch);
  const std::vector<std::size_t> lost = update_rows(tx, batch);
  add_pending(tx, batch, lost);
  record_failures(tx, batch);
  const std::vector<ColumnCounts> applied = counts_applied(batch, lost);
  for (std::size_t c = 0; c < totals.size() && c < applied.size(); ++c) totals[c] += applied[c];
  record_progress(tx, batch, totals);
  tx.commit();
  totals_ = std::move(totals);
  return lost;
}

void PgTableWriter::set_write_limits(pqxx::transaction_base& tx) const {
  tx.exec("SET LOCAL lock_timeout = " + interval_ms(settings_.lock_timeout));
  tx.exec("SET LOCAL statement_timeout = " + interval_ms(settings_.statement_timeout));
  // A writer frozen mid-transaction (SIGSTOP, a swapped-out host) loses its
  // session once its lease is over: its row locks, the application's rows'
  // and its unit's, go with it, and another worker can take the unit over.
  tx.exec("SET LOCAL idle_in_transaction_session_timeout = " + interval_ms(lease_.lease));
  // A batch touches a few thousand rows by primary key: index lookups, never
  // a scan of the whole table, whatever the planner guesses for large batches.
  tx.exec("SET LOCAL enable_hashjoin = off");
  tx.exec("SET LOCAL enable_mergejoin = off");
  // No wait for the WAL flush at commit: the application's commits do not
  // queue behind rekey's. A crash can lose the last batches, but each one
  // together with its checkpoint, so a rerun simply redoes them.
  tx.exec("SET LOCAL synchronous_commit = off");
  if (settings_.triggers == Triggers::kSkip) tx.exec(kSkipTriggers);
}

// The pending table: re-read rows settled, and those gone marked not found.
void PgTableWriter::settle_pending(pqxx::transaction_base& tx, const BatchWrite& batch) const {
  const std::string these_pending =
      " WHERE run_id = $1 AND table_name = $2 AND primary_key IN (SELECT k::jsonb FROM unnest($3::text[]) AS k)";
  const std::string pending = quote_ident(settings_.state_schema) + ".pending";
  if (!batch.resolved_pending.empty()) {
    tx.exec_params("DELETE FROM " + pending + these_pending, settings_.run_id, shape_.display_name(),
                   json_keys(batch.resolved_pending));
  }
  if (!batch.vanished_pending.empty()) {
    tx.exec_params("UPDATE " + pending + " SET not_found_at = now()" + these_pending, settings_.run_id,
                   shape_.display_name(), json_keys(batch.vanished_pending));
  }
}

// The target table: the batch's compare-and-swap UPDATE. Returns the indexes
// of the updates that did not apply.
std::vector<std::size_t> PgTableWriter::update_rows(pqxx::transaction_base& tx, const BatchWrite& batch) const {
  if (batch.updates.empty()) return {};
  std::vector<pqxx::binarystring> params;
  for (const std::string& array : update_arrays(shape_, batch.updates)) params.emplace_back(array.data(), array.size());
  const pqxx::result applied = tx.exec_params(batch.skip_locked ? update_skip_locked_sql_ : update_sql_,
                                              pqxx::prepare::make_dynamic_params(params));
  std::vector<bool> done(batch.updates.size(), false);
  for (const auto& r : applied) done.at(r[0].as<std::size_t>() - 1) = true;
  std::vector<std::size_t> lost;
  for (std::size_t i = 0; i < batch.updates.size(); ++i) {
    if (!done[i]) lost.push_back(i);
  }
  return lost;
}

// The pending table: the rows whose update did not apply, to be read again.
void PgTableWriter::add_pending(pqxx::transaction_base& tx, const BatchWrite& batch,
                                const std::vector<std::size_t>& lost) const {
  if (lost.empty()) return;
  std::vector<KeyValues> again;
  for (std::size_t i : lost) again.push_back(batch.updates[i].key);
  tx.exec_params("INSERT INTO " + quote_ident(settings_.state_schema) +
                     ".pending (run_id, table_name, primary_key) "
                     "SELECT $1, $2, k::jsonb FROM unnest($3::text[]) AS k "
                     "ON CONFLICT (run_id, table_name, primary_key) DO UPDATE SET not_found_at = NULL",
                 settings_.run_id, shape_.display_name(), json_keys(again));
}

// The failures table: values no key decrypts, with their reason.
void PgTableWriter::record_failures(pqxx::transaction_base& tx, const BatchWrite& batch) const {
  if (batch.failures.empty()) return;
  std::vector<std::string> cols, keys, reasons;
  for (const auto& f : batch.failures) {
    cols.push_back(shape_.columns.at(f.column));
    keys.push_back(key_display(f.key));
    reasons.push_back(f.reason);
  }
  tx.exec_params("INSERT INTO " + quote_ident(settings_.state_schema) +
                     ".failures (run_id, table_name, column_name, primary_key, reason) "
                     "SELECT $1, $2, c, k, r FROM unnest($3::text[], $4::text[], $5::text[]) AS f(c, k, r) "
                     "ON CONFLICT DO NOTHING",
                 settings_.run_id, shape_.display_name(), text_array(cols), text_array(keys), text_array(reasons));
}

// The work unit's row (checkpoint, counts, rows seen, the lease extended),
// locked by fence_unit() at the start of this transaction.
void PgTableWriter::record_progress(pqxx::transaction_base& tx, const BatchWrite& batch,
                                    const std::vector<ColumnCounts>& totals) const {
  const std::string state = quote_ident(settings_.state_schema);
  const std::optional<std::string> checkpoint =
      batch.checkpoint ? std::optional<std::string>(key_to_json(*batch.checkpoint).dump()) : std::nullopt;
  tx.exec_params("UPDATE " + state +
                     ".chunks SET last_key = COALESCE($4::jsonb, last_key), counts = $5::jsonb, "
                     "rows_seen = rows_seen + $6, lease_until = pg_catalog.now() + $7::interval, "
                     "updated_at = pg_catalog.now() WHERE run_id = $1 AND table_name = $2 AND chunk = $3",
                 settings_.run_id, lease_.unit.table_name, lease_.unit.chunk, checkpoint, counts_json(totals),
                 batch.rows_seen, std::to_string(lease_.lease.count()) + " milliseconds");
  // The run's sign of life comes with the lease renewals (WorkUnits::renew),
  // not from every batch of every lane, which would all queue on its row.
}

std::vector<KeyValues> PgTableWriter::pending() {
  return session_.run([&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const pqxx::result r = tx.exec_params("SELECT primary_key::text FROM " + quote_ident(settings_.state_schema) +
                                              ".pending WHERE run_id = $1 AND table_name = $2 AND not_found_at IS NULL "
                                              "ORDER BY primary_key",
                                          settings_.run_id, shape_.display_name());
    std::vector<KeyValues> keys;
    for (const auto& row : r) keys.push_back(key_from_json(nlohmann::json::parse(row[0].c_str())));
    return keys;
  });
}

}  // namespace rekey::db
