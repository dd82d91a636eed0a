#include "cli/verify_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/cli_choices.h"
#include "cli/db_options.h"
#include "cli/exit_code.h"
#include "cli/key_source.h"
#include "cli/progress.h"
#include "cli/relation_census.h"
#include "cli/run_report.h"
#include "cli/scope.h"
#include "cli/verify_census.h"
#include "common/duration.h"
#include "common/errors.h"
#include "common/log.h"
#include "db/discovery_queries.h"
#include "db/snapshot.h"
#include "db/state_schema_name.h"
#include "migrate/census_engine.h"

namespace rekey {
namespace {

void drop_named_columns(db::ScopeRelation& rel, const Scope& named) {
  for (const auto& n : named.relations) {
    if (n.schema != rel.schema || n.table != rel.table) continue;
    auto& cols = rel.columns;
    cols.erase(std::remove_if(cols.begin(), cols.end(),
                              [&](const db::ScopeColumn& c) {
                                return std::any_of(n.columns.begin(), n.columns.end(),
                                                   [&](const db::ScopeColumn& m) { return m.name == c.name; });
                              }),
               cols.end());
  }
}

Plan plan_census(const std::string& conninfo, const VerifyOptions& o) {
  db::DiscoveryQueries queries(conninfo);
  Plan plan;
  const Scope named = o.columns.empty() ? Scope{} : named_scope(queries, o.columns);
  for (const auto& rel : named.relations) plan.jobs.push_back({rel, ValuePolicy::kEveryValue});
  plan.unchecked = named.unchecked;
  if (o.discover) {
    Scope all = database_scope(queries, {}, o.state_schema, Exclusions(o.exclude));
    for (auto& rel : all.relations) {
      drop_named_columns(rel, named);
      if (!rel.columns.empty()) plan.jobs.push_back({std::move(rel), ValuePolicy::kValuesWithToken});
    }
    plan.unchecked.insert(plan.unchecked.end(), all.unchecked.begin(), all.unchecked.end());
    plan.excluded = std::move(all.excluded);
  }
  return plan;
}

// True when a value fails the check (see add_verify_command).
bool any_value_fails(const std::vector<RelationCensus>& tables, const VerifyOptions& o) {
  for (const auto& t : tables) {
    for (const auto& k : t.outcome.counts) {
      if (k.undecryptable > 0 || (o.require_new && k.not_new() > 0)) return true;
    }
  }
  return false;
}

// Fails when something could not be checked, a value fails the check, or a
// --require-new gate found no token at all.
RunOutcome verify_outcome(const std::vector<RelationCensus>& tables, const Plan& plan, const VerifyOptions& o,
                          bool complete) {
  RunOutcome outcome;
  outcome.stopped = !complete;
  outcome.found_failures = !plan.unchecked.empty() ||
                           (o.require_new && !o.allow_no_tokens && complete && found_nothing(tables)) ||
                           any_value_fails(tables, o);
  return outcome;
}

// What the snapshot cannot vouch for: transactions begun before it and still
// open (or, on a standby, the primary's, which it cannot see).
void add_snapshot_gaps(const db::ExportedSnapshot& snapshot, Plan& plan) {
  for (const auto& open : snapshot.older_still_open()) {
    plan.unchecked.push_back({"transaction (" + open + ")", UncheckedCause::kOpenTransaction,
                              "began before the census and is still open: it could still commit values the "
                              "census cannot see; rerun once it has ended"});
  }
  if (snapshot.on_standby()) {
    plan.unchecked.push_back({"transactions on the primary", UncheckedCause::kOpenTransaction,
                              "this server is a standby: a transaction still open on the primary could commit "
                              "values the census cannot see, and a standby cannot wait for one; run the gate on "
                              "the primary"});
  }
}

// How long the gate waits for the WAL flush (normally within 3 x wal_writer_delay).
constexpr std::chrono::seconds kWalFlushWait{60};

// A census passes only once the WAL is flushed up to its snapshot: a value
// committed without waiting for its flush, as rotate's batches are, must not
// come back on the old key after a crash of the server, the old key deleted.
// Not flushed in time: the gate fails and says so. Returns false when rekey was
// stopped first (the census then counts as stopped: exit 75).
bool await_wal_flush(const std::string& conninfo, const db::ExportedSnapshot& snapshot, StopControl& stop, Plan& plan) {
  if (!snapshot.wal_end() ||
      db::wait_until_flushed(conninfo, *snapshot.wal_end(), kWalFlushWait, [&] { return stop.should_stop(); })) {
    return true;
  }
  if (stop.should_stop()) return false;
  plan.unchecked.push_back({"write-ahead log", UncheckedCause::kUnflushedWal,
                            "the WAL up to the census's snapshot was not flushed to disk within " +
                                std::to_string(kWalFlushWait.count()) +
                                " s: a crash of the server could still undo values the census saw; rerun"});
  return true;
}

int run_verify(const VerifyOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  force_read_only_sessions();
  const std::string conninfo = resolve_conninfo(o.db);
  const auto keyring = load_keyring(o.keys, OldKeyPolicy::kOptional);
  // Every relation is read at the instant the snapshot is taken, before the
  // scope is listed: a row that moves between relations is seen once.
  const db::ExportedSnapshot snapshot(conninfo, parse_duration(o.wait_for_transactions, "--wait-for-transactions"));
  Plan plan = plan_census(conninfo, o);
  add_snapshot_gaps(snapshot, plan);

  CensusSettings settings;
  settings.batch_size = o.batch_size;
  settings.batch_bytes = o.batch_bytes;
  settings.threads = o.threads;
  settings.max_rows = o.sample;
  StopControl stop;
  install_signal_handlers(stop);
  const ProgressStyle style = default_progress_style(!log::enabled(log::Level::kInfo));
  std::vector<RelationCensus> tables;
  bool complete = true;
  for (const auto& job : plan.jobs) {
    const TableShape shape = job.relation.shape(job.policy);
    const auto estimate = static_cast<std::int64_t>(std::max(0.0, shape.estimated_rows));
    ProgressReporter progress(style, shape.display_name(), 0, o.sample > 0 ? std::min(o.sample, estimate) : estimate);
    RelationCensus t{job, shape,
                     census_relation(conninfo, snapshot.id(), shape, *keyring, settings, stop,
                                     [&](std::int64_t rows, double s) { progress.update(rows, s); })};
    progress.finish(t.outcome.rows_seen,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    complete = complete && t.outcome.completed;
    tables.push_back(std::move(t));
  }
  complete = complete && await_wal_flush(conninfo, snapshot, stop, plan);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const int code = to_int(exit_code_for(verify_outcome(tables, plan, o, complete)));
  const nlohmann::json j = verify_json(tables, plan, *keyring, o, code, complete, seconds);
  if (o.format == OutputFormat::kJson) {
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
  } else {
    print_verify_text(tables, plan, *keyring, o, code, seconds);
  }
  if (!o.report.empty()) write_json_file(o.report, j);
  return code;
}

}  // namespace

void force_read_only_sessions() {
  const char* existing = std::getenv("PGOPTIONS");
  std::string options = existing != nullptr && *existing != '\0' ? std::string(existing) + " " : "";
  options += "-c default_transaction_read_only=on";
  ::setenv("PGOPTIONS", options.c_str(), 1);
}

void add_verify_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<VerifyOptions>();
  CLI::App* cmd = root.add_subcommand(
      "verify",
      "Count, read-only, which key each value is under; exit 3 on undecryptable values (or, with --require-new, "
      "on any value not under the new key).\n"
      "Example: NEW_ENCRYPTION_KEY=... rekey verify --discover --require-new");
  add_db_option(*cmd, o->db);
  cmd->add_option("--column", o->columns, "[SCHEMA.]TABLE.COLUMN to check (repeatable; SQL identifier rules)");
  cmd->add_flag("--discover", o->discover,
                "Check every value of every text-like, json, array and bytea column of the database that holds a "
                "token (every schema, table, partition, inheritance child and materialized view)");
  cmd->add_option("--exclude", o->exclude,
                  "SCHEMA.TABLE[.COLUMN] to leave out of --discover (repeatable); the report lists it");
  add_key_options(*cmd, o->keys);
  cmd->add_flag("--require-new", o->require_new,
                "The gate before the old key is retired: exit 3 unless every value checked is under the new key "
                "(old key, undecryptable and not-a-token values all fail) and everything in scope could be "
                "checked; without it, undecryptable values and unchecked objects exit 3");
  cmd->add_option("--wait-for-transactions", o->wait_for_transactions,
                  "Wait this long for transactions begun before the census to end; one still open (or prepared) "
                  "fails the gate")
      ->capture_default_str();
  cmd->add_flag("--allow-no-tokens", o->allow_no_tokens,
                "With --require-new, pass even when no value anywhere holds a token (by default a gate that "
                "checked nothing fails: the wrong --db?)");
  cmd->add_option("--sample", o->sample, "Check only the first N rows (key order) of each table; 0: all")
      ->check(CLI::NonNegativeNumber)
      ->excludes("--require-new");
  cmd->add_option("--report", o->report, "Write the JSON result to this file too");
  cmd->add_option("--format", o->format, "table or json (on stdout)")
      ->transform(
          choices(std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable}, {"json", OutputFormat::kJson}}));
  add_state_schema_option(*cmd, o->state_schema, "rekey's state schema: its own tables are left out of --discover");
  cmd->add_option("--batch-size", o->batch_size, "Rows per read")->check(CLI::Range(1, 1000000))->capture_default_str();
  add_batch_bytes_option(*cmd, o->batch_bytes);
  cmd->add_option("--threads", o->threads, "Decryption threads")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->callback([o, &exit_code] {
    if (o->columns.empty() && !o->discover) throw UsageError("verify: name at least one --column, or use --discover");
    o->keys.hidden_env.push_back(o->db.env);
    exit_code = run_verify(*o);
  });
}

}  // namespace rekey
