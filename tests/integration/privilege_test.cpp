// Least privilege, standbys and read-only servers, replica lag that cannot be
// read, and the identity of the table lock. Against the real PostgreSQL
// (REKEY_TEST_DB) and a real streaming standby of it (it_support's Standby).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

// `rows` rows (id int 1..rows) in each table of `names` (in public), column v:
// plain tokens, mostly under the old key, some new, some NULL.
json tables_spec(const std::vector<std::string>& names, int rows, int seed) {
  json tables = json::array();
  for (const auto& name : names) {
    tables.push_back({{"schema", "public"},
                      {"table", name},
                      {"rows", rows},
                      {"pk", json::array({{{"name", "id"}, {"type", "int"}, {"gen", "int"}}})},
                      {"columns", json::array({{{"name", "v"},
                                                {"type", "text"},
                                                {"format", "plain"},
                                                {"mix", {{"old", 7}, {"new", 2}, {"null", 1}}}}})}});
  }
  return json{
      {"seed", seed}, {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}}, {"tables", tables}};
}

// A login role of its own (roles are per cluster), dropped with what it owns at scope end.
struct Role {
  TestDatabase& db;
  std::string name;
  Role(TestDatabase& d, const std::string& label) : db(d), name(label + "_" + d.name().substr(d.name().size() - 8)) {
    db.exec("DROP ROLE IF EXISTS " + name + "; CREATE ROLE " + name + " LOGIN");
  }
  ~Role() {
    try {
      db.exec("DROP OWNED BY " + name + " CASCADE; DROP ROLE " + name);
    } catch (const std::exception&) {
      // The database is dropped right after; the role is left behind at worst.
    }
  }
  std::string conninfo() const { return db.conninfo() + " user=" + name; }
};

}  // namespace

TEST_SUITE("integration.privilege") {
  TEST_CASE("two tables whose names' hashtext collide do not block each other; the same table still does") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("lock_identity");
    // Two names with equal hashtext('public.' || name): about 2^16 names make a collision likely.
    const Rows pair = db.query(
        "SELECT (array_agg(n ORDER BY n))[1], (array_agg(n ORDER BY n))[2] FROM (SELECT 't' || i AS n, "
        "hashtext('public.t' || i) AS h FROM generate_series(1, 300000) i) s GROUP BY h HAVING count(*) > 1 LIMIT 1");
    REQUIRE(pair.size() == 1);
    const std::string a = *pair[0][0];
    const std::string b = *pair[0][1];
    REQUIRE(db.value("SELECT hashtext('public." + a + "') = hashtext('public." + b + "')") == "t");
    SeededFixture seeded(db, tables_spec({a, b}, 3000, 41));
    const auto rotate = [&](const std::string& table, std::vector<std::string> more = {}) {
      std::vector<std::string> args = {"rotate", "--db", db.conninfo(), "--column", table + ".v"};
      args.insert(args.end(), more.begin(), more.end());
      return args;
    };
    // a's runner holds its lock for about 3 s.
    auto slow = start_rekey(rotate(a, {"--batch-size", "100", "--max-rate", "1000"}), key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !slow->running(); }, 30s));
    REQUIRE(slow->running());
    const ProcessResult other = run_rekey(rotate(b), key_env());
    CHECK_MESSAGE(other.exit_code == 0, other.describe());
    REQUIRE(slow->running());
    const ProcessResult same = run_rekey(rotate(a), key_env());
    CHECK(same.exit_code == 2);
    CHECK(contains(same.err, "public." + a + " is being rotated by another rekey: backend pid "));
    const ProcessResult first = slow->wait(60s);
    CHECK_MESSAGE(first.exit_code == 0, first.describe());
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("a standby or a read-only session: rotate exits 2 before writing; verify and discover run there") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("standby_gate");
    SeededFixture seeded(db, tables_spec({"accounts"}, 500, 42));
    Standby& standby = Standby::shared();
    standby.catch_up(db.conninfo());
    const std::string replica = standby.conninfo(db.name());

    const ProcessResult refused = run_rekey({"rotate", "--db", replica, "--column", "accounts.v"}, key_env());
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "server is in recovery (read-only): run rotate against the primary"));
    const ProcessResult read_only =
        run_rekey({"rotate", "--db", db.conninfo(), "--column", "accounts.v"},
                  key_env(kNewPassphrase, kOldPassphrase, {{"PGOPTIONS", "-c default_transaction_read_only=on"}}));
    CHECK(read_only.exit_code == 2);
    CHECK(contains(read_only.err, "the session is read-only"));
    CHECK_FALSE(db.schema_exists("rekey"));
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "untouched"}}));

    const ProcessResult found = run_rekey({"discover", "--db", replica}, key_env());
    CHECK_MESSAGE(found.exit_code == 0, found.describe());
    CHECK(contains(found.out, "public.accounts.v"));
    const std::vector<std::string> gate = {"verify", "--discover", "--require-new", "--db"};
    const auto verify_on = [&](const std::string& conninfo) {
      std::vector<std::string> args = gate;
      args.push_back(conninfo);
      return run_rekey(args, key_env());
    };
    CHECK(verify_on(replica).exit_code == 3);  // old-key values, as on the primary
    CHECK(verify_on(db.conninfo()).exit_code == 3);

    const ProcessResult rotated = run_rekey({"rotate", "--db", db.conninfo(), "--column", "accounts.v"}, key_env());
    REQUIRE_MESSAGE(rotated.exit_code == 0, rotated.describe());
    standby.catch_up(db.conninfo());
    const ProcessResult on_primary = verify_on(db.conninfo());
    const ProcessResult on_standby = verify_on(replica);
    CHECK_MESSAGE(on_primary.exit_code == 0, on_primary.describe());
    // A standby cannot wait for the primary's open transactions: its gate says so and fails.
    CHECK_MESSAGE(on_standby.exit_code == 3, on_standby.describe());
    CHECK(contains(on_standby.out, "NOT CHECKED transactions on the primary"));
    CHECK(contains(on_standby.out, "run the gate on the primary"));
    // Its census is the primary's, value for value.
    const auto column_line = [](const std::string& out) {
      const std::size_t at = out.find("public.accounts.v:");
      return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
    };
    CHECK(!column_line(on_primary.out).empty());
    CHECK(column_line(on_standby.out) == column_line(on_primary.out));
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("a role granted what sql/grants.sql grants, without CREATE on the database, rotates and passes the gate") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("least_privilege");
    SeededFixture seeded(db, tables_spec({"accounts", "users"}, 300, 43));
    Role role(db, "rekey_lp");
    const ProcessResult granted =
        run({"/usr/bin/psql", "-X", "-q", "-d", db.conninfo(), "-v", "role=" + role.name, "-v",
             "tables=public.accounts, public.users", "-f", source_path("sql/grants.sql")});
    REQUIRE_MESSAGE(granted.exit_code == 0, granted.describe());
    REQUIRE(db.value("SELECT has_database_privilege('" + role.name + "', current_database(), 'CREATE')") == "f");
    REQUIRE(db.value("SELECT rolsuper FROM pg_roles WHERE rolname = '" + role.name + "'") == "f");
    const ProcessResult rotated =
        run_rekey({"rotate", "--db", role.conninfo(), "--discover", "--max-replica-lag", "10s"}, key_env());
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());
    const ProcessResult gate = run_rekey({"verify", "--db", role.conninfo(), "--discover", "--require-new"}, key_env());
    CHECK_MESSAGE(gate.exit_code == 0, gate.describe());
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("a privilege missing on a target, or the lag unreadable with --max-replica-lag: exit 2, nothing written") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("missing_privilege");
    SeededFixture seeded(db, tables_spec({"accounts"}, 200, 44));
    Role role(db, "rekey_np");
    db.exec("CREATE SCHEMA state AUTHORIZATION " + role.name);
    db.exec("GRANT SELECT (id, v), UPDATE (id) ON accounts TO " + role.name);
    const std::vector<std::string> rotate = {"rotate",     "--db",           role.conninfo(), "--column",
                                             "accounts.v", "--state-schema", "state"};
    const ProcessResult no_update = run_rekey(rotate, key_env());
    CHECK(no_update.exit_code == 2);
    CHECK(contains(no_update.err, "UPDATE on column public.accounts.v"));
    CHECK_FALSE(contains(no_update.err, "SELECT on column"));

    db.exec("GRANT UPDATE (v) ON accounts TO " + role.name);
    Standby::shared().catch_up(db.conninfo());  // a standby is listed, but its state is hidden from the role
    std::vector<std::string> with_lag = rotate;
    with_lag.insert(with_lag.end(), {"--max-replica-lag", "10s"});
    const ProcessResult hidden_lag = run_rekey(with_lag, key_env());
    CHECK(hidden_lag.exit_code == 2);
    CHECK(contains(hidden_lag.err, "--max-replica-lag: rekey's role cannot read the standbys' state"));
    CHECK(contains(hidden_lag.err, "pg_read_all_stats"));
    CHECK(db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'state'") == 0);
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "untouched"}}));

    // With them all, the same role rotates (the state tables made in its own schema).
    const ProcessResult rotated = run_rekey(rotate, key_env());
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());
    REQUIRE_DATA_OK(
        check_fixture(seeded.conninfo, seeded.manifest, json{{"mode", "final"}, {"state_schema", "state"}}));
  }

  TEST_CASE(
      "--max-replica-lag: a standby that goes away pauses the run until it is back, or stops it after --retry-for") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("standby_gone");
    SeededFixture seeded(db, tables_spec({"accounts"}, 6000, 45));
    Standby& standby = Standby::shared();
    standby.catch_up(db.conninfo());
    const std::vector<std::string> args = {
        "rotate",     "--db", db.conninfo(),       "--column", "accounts.v",  "--batch-size", "100",
        "--max-rate", "2000", "--max-replica-lag", "30s",      "--retry-for", "60s"};
    auto p = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !p->running(); }, 30s));
    REQUIRE(p->running());
    standby.stop();
    REQUIRE(wait_until([&] { return contains(p->stderr_so_far(), "is not connected") || !p->running(); }, 10s));
    REQUIRE(p->running());
    CHECK(contains(p->stderr_so_far(), "paused: standby walreceiver from local socket is not connected"));
    sleep_for(300ms);  // the batches read before the pause are written
    const long long paused_at = latest_rows_seen(db);
    sleep_for(1500ms);
    CHECK(latest_rows_seen(db) == paused_at);
    CHECK(paused_at < 6000);
    standby.start();
    const ProcessResult resumed = p->wait(60s);
    CHECK_MESSAGE(resumed.exit_code == 0, resumed.describe());
    CHECK(contains(resumed.err, "resumed after"));
    REQUIRE_DATA_OK(seeded.check());

    // Gone for longer than --retry-for: stopped, resumable (75), and the rerun finishes.
    TestDatabase second("standby_gone_2");
    SeededFixture more(second, tables_spec({"accounts"}, 4000, 46));
    std::vector<std::string> short_retry = args;
    short_retry[2] = second.conninfo();
    short_retry.back() = "1s";
    auto q = start_rekey(short_retry, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(second) > 0 || !q->running(); }, 30s));
    REQUIRE(q->running());
    standby.stop();
    const ProcessResult stopped = q->wait(60s);
    standby.start();
    CHECK(stopped.exit_code == 75);
    CHECK(contains(stopped.err, "is not connected for longer than --retry-for: stopping; rerun to continue"));
    REQUIRE_DATA_OK(more.check(json{{"mode", "partial"}}));
    standby.catch_up(second.conninfo());
    const ProcessResult rerun = run_rekey(short_retry, key_env());
    CHECK_MESSAGE(rerun.exit_code == 0, rerun.describe());
    REQUIRE_DATA_OK(more.check());
  }

  TEST_CASE("--max-replica-lag: replay paused on the standby pauses the run and says why; resumed replay resumes it") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("replay_paused");
    SeededFixture seeded(db, tables_spec({"accounts"}, 6000, 47));
    Standby& standby = Standby::shared();
    standby.catch_up(db.conninfo());
    Session on_standby(standby.conninfo("postgres"));
    // Replay goes on afterwards whatever happens here: later tests share the standby.
    struct ResumeReplay {
      Session& standby;
      ~ResumeReplay() {
        try {
          standby.exec("SELECT pg_wal_replay_resume()");
          standby.commit();
        } catch (...) {
        }
      }
    } resume_replay{on_standby};
    auto p = start_rekey({"rotate", "--db", db.conninfo(), "--column", "accounts.v", "--batch-size", "100",
                          "--max-rate", "2000", "--max-replica-lag", "1s", "--retry-for", "60s"},
                         key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !p->running(); }, 30s));
    REQUIRE(p->running());
    on_standby.exec("SELECT pg_wal_replay_pause()");
    on_standby.commit();
    const bool paused = wait_until([&] { return contains(p->stderr_so_far(), "replay lag is") || !p->running(); }, 30s);
    INFO(p->stderr_so_far());
    CHECK(paused);
    REQUIRE(p->running());
    sleep_for(500ms);  // the batches read before the pause are written
    const long long paused_at = latest_rows_seen(db);
    sleep_for(1500ms);
    CHECK(latest_rows_seen(db) == paused_at);
    CHECK(paused_at < 6000);
    on_standby.exec("SELECT pg_wal_replay_resume()");
    on_standby.commit();
    const ProcessResult resumed = p->wait(60s);
    CHECK_MESSAGE(resumed.exit_code == 0, resumed.describe());
    CHECK(contains(resumed.err, "resumed after"));
    REQUIRE_DATA_OK(seeded.check());
  }
}
