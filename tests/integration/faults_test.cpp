// Fault injection against a real PostgreSQL (REKEY_TEST_DB): application
// writers racing a rotation, rekey's backends terminated, the server restarted,
// kill -9 at many points, a long-held application row lock, a second runner,
// and throttling. Every case ends with every row checked by Python's
// cryptography (tests/pg/fixture.py).
//
// Random choices (rows written, kill points, moments) come from one seed per
// test case, shown with any failure; REKEY_FI_SEED=N replays them. The rate cap
// (--max-rate) makes each run last long enough for its faults to land mid-run
// whatever the machine's speed.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "db/snapshot.h"
#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// REKEY_FI_SEED, or a fresh random seed.
std::uint32_t test_seed() {
  const char* fixed = std::getenv("REKEY_FI_SEED");
  if (fixed != nullptr && *fixed != '\0') return static_cast<std::uint32_t>(std::stoul(fixed));
  return std::random_device{}();
}

int uniform(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// ---------------------------------------------------------------- data

json pk(const std::string& name, const std::string& type, const std::string& gen) {
  return json{{"name", name}, {"type", type}, {"gen", gen}};
}

json col(const std::string& name, const std::string& type, const std::string& format, const json& mix) {
  return json{{"name", name}, {"type", type}, {"format", format}, {"mix", mix}};
}

const json kClean = json{{"old", 7}, {"new", 2}, {"null", 1}};
const json kMixed = json{{"old", 6}, {"new", 2}, {"garbage", 1}, {"null", 1}};

// public.accounts (id bigint 1..rows): a_enc text holding plain tokens (always
// decryptable), b_enc bytea holding wrapped tokens (with garbage when `mix_b` says so).
json accounts_spec(int rows, const json& mix_b, int seed) {
  const json t{
      {"schema", "public"},
      {"table", "accounts"},
      {"rows", rows},
      {"pk", json::array({pk("id", "bigint", "int")})},
      {"columns", json::array({col("a_enc", "text", "plain", kClean), col("b_enc", "bytea", "wrapped", mix_b)})}};
  return json{{"seed", seed},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
              {"tables", json::array({t})}};
}

// Requires the checker's verdict to be ok, showing its first errors otherwise.

// rekey rotate over both columns of public.accounts, plus `more`.
// Four writer lanes, small chunks: the faults land on lanes working side by side.
std::vector<std::string> rotate_args(const TestDatabase& db, const std::vector<std::string>& more) {
  std::vector<std::string> args{"rotate",   "--db",           db.conninfo(), "--column", "accounts.a_enc",
                                "--column", "accounts.b_enc", "--workers",   "4",        "--chunk-rows",
                                "1000"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string rekey_sessions_sql(const TestDatabase& db) {
  return "FROM pg_stat_activity WHERE datname = '" + db.name() + "' AND application_name = 'rekey'";
}

// Waits for rekey; a run stopped with 75 (retries exhausted, rows still
// pending) is finished by running the same command again. Returns the last result.
ProcessResult finish(Process& p, const std::vector<std::string>& args, std::chrono::milliseconds timeout = 90s) {
  ProcessResult r = p.wait(timeout);
  INFO("first rekey: " << r.describe());
  REQUIRE(!r.timed_out);
  if (r.exit_code != 75) return r;
  MESSAGE("rekey stopped with 75 (" << r.seconds << " s); running it again");
  ProcessResult again = run_rekey(args, key_env(), timeout);
  again.err = r.err + "\n--- (rerun)\n" + again.err;
  return again;
}

// ---------------------------------------------------------------- the application

// What the application writes: new-key tokens of known plaintexts, made by
// Python's cryptography. a: "app-a-<i>" plain; b: "app-b-<i>" wrapped.
struct AppValue {
  std::string a;
  std::string b;
};

std::vector<AppValue> app_values(int count) {
  std::vector<std::vector<std::string>> columns;
  for (const auto& [prefix, format] : {std::pair<std::string, std::string>{"app-a-", "plain"}, {"app-b-", "wrapped"}}) {
    columns.push_back(python_tokens("NEW_ENCRYPTION_KEY", count, format, prefix));
    REQUIRE(columns.back().size() == static_cast<std::size_t>(count));
  }
  std::vector<AppValue> out;
  for (int i = 0; i < count; ++i) out.push_back({columns[0][i], columns[1][i]});
  return out;
}

std::unique_ptr<pqxx::connection> app_connection(const TestDatabase& db) {
  return std::make_unique<pqxx::connection>(db.conninfo() + " application_name=app_writer");
}

void app_update(pqxx::connection& c, long long id, const AppValue& v) {
  pqxx::work tx(c);
  const pqxx::result r =
      tx.exec_params("UPDATE accounts SET a_enc = $2, b_enc = convert_to($3, 'UTF8') WHERE id = $1", id, v.a, v.b);
  if (r.affected_rows() != 1) throw std::runtime_error("app: no row " + std::to_string(id));
  tx.commit();
}

void app_insert(pqxx::connection& c, long long id, const AppValue& v) {
  pqxx::work tx(c);
  tx.exec_params("INSERT INTO accounts (id, a_enc, b_enc) VALUES ($1, $2, convert_to($3, 'UTF8'))", id, v.a, v.b);
  tx.commit();
}

// Every row of `expected` holds exactly the values the application wrote last.
void check_app_rows(TestDatabase& db, const std::map<long long, AppValue>& expected) {
  if (expected.empty()) return;
  std::string ids;
  for (const auto& [id, v] : expected) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const Rows rows =
      db.query("SELECT id, a_enc, encode(b_enc, 'escape') FROM accounts WHERE id = ANY('{" + ids + "}'::bigint[])");
  std::map<long long, std::pair<Cell, Cell>> actual;
  for (const auto& r : rows) actual[std::stoll(*r[0])] = {r[1], r[2]};
  std::vector<std::string> wrong;
  for (const auto& [id, v] : expected) {
    const auto it = actual.find(id);
    if (it == actual.end()) {
      wrong.push_back("row " + std::to_string(id) + " lost");
    } else if (it->second.first != v.a || it->second.second != v.b) {
      wrong.push_back("row " + std::to_string(id) + " does not hold the application's last write");
    }
  }
  INFO(wrong.size() << " of " << expected.size() << " rows written by the application are wrong, e.g. "
                    << (wrong.empty() ? "" : wrong.front()));
  CHECK(wrong.empty());
}

// Rows whose two values are not NULL, in [from, to]: the ones the application
// updates (fixture.py checks a cell seeded NULL as NULL even in a skipped row).
std::vector<long long> valued_rows(TestDatabase& db, long long from, long long to) {
  std::vector<long long> ids;
  for (const auto& r :
       db.query("SELECT id FROM accounts WHERE a_enc IS NOT NULL AND b_enc IS NOT NULL AND id BETWEEN " +
                std::to_string(from) + " AND " + std::to_string(to) + " ORDER BY id")) {
    ids.push_back(std::stoll(*r[0]));
  }
  return ids;
}

long long pick(std::mt19937& rng, const std::vector<long long>& ids) {
  return ids.at(std::uniform_int_distribution<std::size_t>(0, ids.size() - 1)(rng));
}

// fixture.py check options: rows the application wrote are checked by check_app_rows.
json skip_rows(const std::map<long long, AppValue>& rows) {
  json keys = json::array();
  for (const auto& [id, v] : rows) keys.push_back(json::array({"public.accounts", json::array({std::to_string(id)})}));
  return keys;
}

// ---------------------------------------------------------------- the server

// pg_ctl on the throwaway cluster of scripts/lib/pg.sh (PG_BIN, PG_TMP), as
// its owner; nullopt when this process cannot do that.
std::optional<ProcessResult> pg_ctl(const std::string& args) {
  const char* bin = std::getenv("PG_BIN");
  const char* tmp = std::getenv("PG_TMP");
  if (bin == nullptr || tmp == nullptr || *bin == '\0' || *tmp == '\0') return std::nullopt;
  struct stat st {};
  const std::string data = std::string(tmp) + "/data";
  if (::stat(data.c_str(), &st) != 0 || (::geteuid() != 0 && ::geteuid() != st.st_uid)) return std::nullopt;
  // Without -o, `restart` starts the server with the options it last ran with (postmaster.opts).
  std::string cmd = "\"$PG_BIN/pg_ctl\" -D \"$PG_TMP/data\" -l \"$PG_TMP/server.log\" " + args;
  if (::geteuid() == 0) cmd = "runuser -u postgres -- " + cmd;
  return run({"/bin/sh", "-c", cmd}, {}, 90s);
}

// Whether pg_ctl works on the test server; says why the test is skipped when not.
bool server_under_control() {
  if (pg_ctl("status")) return true;
  MESSAGE("PG_BIN/PG_TMP not set or not the cluster's owner: skipped (scripts/test.sh provides a server)");
  return false;
}

bool server_accepts_connections() {
  try {
    pqxx::connection c(*admin_conninfo());
    pqxx::nontransaction tx(c);
    tx.exec("SELECT 1");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Starts the server again at scope end if a failed test left it down.
struct ServerKeeper {
  ~ServerKeeper() {
    if (!server_accepts_connections()) pg_ctl("-w -t 60 restart");
  }
};

// The server's WAL writer sleeps `delay` between rounds while this lives
// (ALTER SYSTEM and a reload); reset at scope end, where a failure is only
// reported (a destructor must not throw).
class SleepyWalWriter {
 public:
  // Returns once the WAL writer has read the new delay: the reload wakes it, and
  // it may still finish a round first; this waits 1 s.
  explicit SleepyWalWriter(std::chrono::seconds delay) {
    apply("ALTER SYSTEM SET wal_writer_delay = '" + std::to_string(delay.count()) + "s'");
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  ~SleepyWalWriter() {
    try {
      apply("ALTER SYSTEM RESET wal_writer_delay");
    } catch (const std::exception& e) {
      MESSAGE("ALTER SYSTEM RESET wal_writer_delay failed: " << e.what());
    }
  }
  SleepyWalWriter(const SleepyWalWriter&) = delete;
  SleepyWalWriter& operator=(const SleepyWalWriter&) = delete;

 private:
  static void apply(const std::string& sql) {
    pqxx::connection c(*admin_conninfo());
    pqxx::nontransaction tx(c);
    tx.exec(sql);
    tx.exec("SELECT pg_catalog.pg_reload_conf()");
  }
};

// Stops the server as a crash would (pg_ctl -m immediate: WAL still in the
// server's memory, not yet written, is lost) and starts it again; `db`
// reconnects on its next query.
void crash_and_restart_server(TestDatabase& db) {
  const auto crashed = pg_ctl("-m immediate -w -t 60 stop");
  REQUIRE(crashed);
  REQUIRE_MESSAGE(crashed->exit_code == 0, "pg_ctl stop: " << crashed->describe());
  const auto started = pg_ctl("-w -t 60 restart");
  REQUIRE(started);
  REQUIRE_MESSAGE(started->exit_code == 0, "pg_ctl restart: " << started->describe());
  db.disconnect();
  REQUIRE(server_accepts_connections());
}

// ---------------------------------------------------------------- kill -9

}  // namespace

TEST_SUITE("integration.faults") {
  TEST_CASE(
      "four application writers during a rotation: every row holds the application's last write or its own "
      "plaintext under the new key") {
    REKEY_IT_REQUIRE_DB();
    const std::uint32_t seed = test_seed();
    INFO("REKEY_FI_SEED=" << seed);
    std::mt19937 rng(seed);
    constexpr int kRows = 6000;
    constexpr int kWriters = 4;
    constexpr int kPerWriter = 2500;
    TestDatabase db("app_writers");
    SeededFixture seeded(db, accounts_spec(kRows, kClean, 21));
    const std::vector<AppValue> values = app_values(kWriters * kPerWriter);
    const std::vector<long long> valued = valued_rows(db, 1, kRows);

    // A writer updates random rows (new-key tokens), most of them just ahead of
    // rekey's checkpoint (read by rekey, or about to be: its compare-and-swap
    // loses there), and sometimes inserts a row. Writes of one row are
    // serialized by its stripe mutex, held until commit, so the value recorded
    // last is the value committed last.
    std::vector<std::optional<AppValue>> updated(kRows);  // by id - 1
    std::array<std::mutex, 64> stripes;
    std::vector<std::map<long long, AppValue>> inserted(kWriters);
    std::vector<std::string> errors(kWriters);
    std::atomic<long long> writes{0};
    std::atomic<bool> stop{false};
    std::atomic<long long> checkpoint{-1};  // rekey's last committed key, polled below
    std::vector<std::thread> writers;
    // Stops and joins the writers however the test case ends.
    struct Joiner {
      std::atomic<bool>& stop;
      std::vector<std::thread>& threads;
      ~Joiner() {
        stop = true;
        for (auto& t : threads) {
          if (t.joinable()) t.join();
        }
      }
    } joiner{stop, writers};
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w, wseed = rng()] {
        std::mt19937 wrng(wseed);
        try {
          auto c = app_connection(db);
          for (int k = 0; k < kPerWriter && !stop; ++k) {
            const AppValue& v = values[static_cast<std::size_t>(w * kPerWriter + k)];
            if (wrng() % 10 == 0) {
              const long long id = 1000000LL + 100000LL * w + k;
              app_insert(*c, id, v);
              inserted[static_cast<std::size_t>(w)][id] = v;
            } else {
              const long long near = checkpoint + 1 + static_cast<long long>(wrng() % 150);
              const auto ahead = std::lower_bound(valued.begin(), valued.end(), near);
              const long long id =
                  checkpoint >= 0 && wrng() % 4 != 0 && ahead != valued.end() ? *ahead : pick(wrng, valued);
              const std::lock_guard<std::mutex> hold(stripes[static_cast<std::size_t>(id) % stripes.size()]);
              app_update(*c, id, v);
              updated[static_cast<std::size_t>(id - 1)] = v;
            }
            ++writes;
            std::this_thread::sleep_for(std::chrono::microseconds(wrng() % 3000));
          }
        } catch (const std::exception& e) {
          errors[static_cast<std::size_t>(w)] = e.what();
        }
      });
    }
    const TempDir tmp;
    // About 4 s at the capped rate, writers busy throughout. --pace max: under
    // the pace, rekey would yield to these writers with batches too small to
    // meet them, and the compare-and-swap is what this test must exercise.
    const auto args =
        rotate_args(db, {"--pace", "max", "--batch-size", "100", "--max-rate", "1500", "--report", tmp.file("r.json")});
    auto p = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !p->running(); }, 30s));
    const long long writes_before = writes;
    const auto run_started = Clock::now();
    while (p->running() && seconds_since(run_started) < 60) {
      const Cell key = db.value(
          "SELECT max((last_key->>0)::bigint) FROM rekey.chunks WHERE run_id = (SELECT max(id) FROM rekey.runs)");
      if (key) checkpoint = std::stoll(*key);
      sleep_for(10ms);
    }
    const ProcessResult first = p->wait(30s);
    const long long writes_during = writes - writes_before;
    stop = true;
    for (auto& t : writers) t.join();
    ProcessResult r = first;
    if (first.exit_code == 75) {
      MESSAGE("rekey stopped with 75 (rows kept changing); running it again without writers");
      r = run_rekey(args, key_env());
    }
    std::map<long long, AppValue> app_rows;
    for (int i = 0; i < kRows; ++i) {
      if (updated[static_cast<std::size_t>(i)]) app_rows[i + 1] = *updated[static_cast<std::size_t>(i)];
    }
    std::size_t inserts = 0;
    for (const auto& m : inserted) {
      app_rows.insert(m.begin(), m.end());
      inserts += m.size();
    }
    const json c = read_report(tmp.file("r.json")).at("tables").at(0).at("columns");
    const long long lost_races =
        c.at(0).at("changed_concurrently").get<long long>() + c.at(1).at("changed_concurrently").get<long long>();
    MESSAGE("application: " << writes.load() << " writes (" << writes_during << " while rekey ran), "
                            << app_rows.size() - inserts << " rows updated, " << inserts
                            << " inserted; rekey: " << first.seconds << " s, exit " << first.exit_code
                            << ", changed concurrently " << lost_races << " values");
    INFO(first.describe());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    for (const auto& e : errors) CHECK_MESSAGE(e.empty(), "application writer failed: " << e);
    CHECK(writes_during > 500);
    CHECK(lost_races > 0);  // the compare-and-swap did meet the application
    check_app_rows(db, app_rows);
    CHECK(db.count("SELECT count(*) FROM accounts") == kRows + static_cast<long long>(inserts));
    // The inserted rows are verified; the checker expects exactly the seeded ones.
    db.exec("DELETE FROM accounts WHERE id > " + std::to_string(kRows));
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "final"}, {"skip", skip_rows(app_rows)}}));
  }

  TEST_CASE(
      "rekey's backends terminated (pg_terminate_backend) at random moments: the run completes, every row "
      "correct") {
    REKEY_IT_REQUIRE_DB();
    const std::uint32_t seed = test_seed();
    INFO("REKEY_FI_SEED=" << seed);
    std::mt19937 rng(seed);
    TestDatabase db("terminate");
    SeededFixture seeded(db, accounts_spec(8000, kMixed, 22));
    const TempDir tmp;
    // About 4 s at the capped rate.
    const auto args = rotate_args(db, {"--batch-size", "100", "--max-rate", "2000", "--report", tmp.file("r.json")});
    auto p = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !p->running(); }, 30s, 2ms));
    const std::string terminate = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) " + rekey_sessions_sql(db);
    std::vector<std::string> landed;
    for (int attempt = 0; attempt < 20 && landed.size() < 6 && p->running(); ++attempt) {
      sleep_for(std::chrono::milliseconds(uniform(rng, 150, 550)));
      if (!p->running()) break;
      const long long seen = latest_rows_seen(db);
      const long long n = db.count(terminate);
      if (n > 0) landed.push_back(std::to_string(n) + " at " + std::to_string(seen));
    }
    std::string where;
    for (const auto& l : landed) where += " [" + l + "]";
    INFO("terminated rekey backends (count at rows_seen):" << where);
    CHECK(landed.size() >= 4);
    const ProcessResult r = finish(*p, args);
    INFO(r.describe());
    CHECK(r.exit_code == 3);  // garbage in b_enc
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
    CHECK(db.value("SELECT status FROM rekey.runs") == "finished");
    CHECK(latest_rows_seen(db) == 8000);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
  }

  TEST_CASE("the server restarted mid-run: the run completes, every row correct, the server is left running") {
    REKEY_IT_REQUIRE_DB();
    if (!server_under_control()) return;
    TestDatabase db("restart_server");
    SeededFixture seeded(db, accounts_spec(8000, kMixed, 23));
    const ServerKeeper keeper;  // destroyed before db: the database is dropped from a running server
    const TempDir tmp;
    const auto args = rotate_args(db, {"--batch-size", "100", "--max-rate", "2000", "--report", tmp.file("r.json")});
    auto p = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) >= 2000 || !p->running(); }, 30s, 2ms));
    REQUIRE(p->running());
    const long long seen_before = latest_rows_seen(db);
    // Down for about a second (rekey's reconnects are refused), then started with its previous options.
    const auto stopped = pg_ctl("-m fast -w -t 60 stop");
    REQUIRE(stopped);
    REQUIRE_MESSAGE(stopped->exit_code == 0, "pg_ctl stop: " << stopped->describe());
    const auto down_at = Clock::now();
    sleep_for(1000ms);
    const auto started = pg_ctl("-w -t 60 restart");
    REQUIRE(started);
    REQUIRE_MESSAGE(started->exit_code == 0, "pg_ctl restart: " << started->describe());
    const double down = seconds_since(down_at);
    db.disconnect();  // its session ended with the server
    REQUIRE(server_accepts_connections());
    const long long seen_after_restart = latest_rows_seen(db);
    const ProcessResult r = finish(*p, args);
    MESSAGE("server down " << down << " s at rows_seen " << seen_before << "; rekey took " << r.seconds << " s");
    INFO(r.describe());
    CHECK(r.exit_code == 3);  // garbage in b_enc
    CHECK(contains(r.err, "retrying"));
    CHECK(seen_after_restart < 8000);  // the restart landed mid-run
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
    CHECK(db.value("SELECT status FROM rekey.runs") == "finished");
    CHECK(latest_rows_seen(db) == 8000);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
    // A fresh connection to the administrative database works: later test cases can run.
    CHECK(server_accepts_connections());
  }

  TEST_CASE(
      "kill -9 at a dozen random points, then resume: no row lost, none encrypted twice, plaintexts and "
      "timestamps unchanged") {
    REKEY_IT_REQUIRE_DB();
    const std::uint32_t seed = test_seed();
    INFO("REKEY_FI_SEED=" << seed);
    std::mt19937 rng(seed);
    constexpr long long kRows = 20000;
    TestDatabase db("kill9_many");
    SeededFixture seeded(db, accounts_spec(static_cast<int>(kRows), kMixed, 24));
    const TempDir tmp;
    // About 2 s at the capped rate over all the pieces.
    const auto args = rotate_args(db, {"--batch-size", "200", "--max-rate", "10000", "--report", tmp.file("r.json")});
    std::string history;
    long long last = 0;
    // Two kills in the first 120 ms (start-up: keys, state schema, lock, run row), then eleven at random row counts.
    for (int i = 0; i < 2; ++i) {
      auto p = start_rekey(args, key_env());
      const int ms = uniform(rng, 0, 120);
      sleep_for(std::chrono::milliseconds(ms));
      p->signal(SIGKILL);
      const ProcessResult r = p->wait(30s);
      INFO(r.describe());
      REQUIRE(r.term_signal == SIGKILL);
      wait_for_rekey_sessions_to_end(db);
      const long long seen = latest_rows_seen(db);
      history += " [" + std::to_string(ms) + "ms: " + std::to_string(seen) + "]";
      last = std::max(last, seen);
    }
    std::vector<long long> thresholds;
    for (int i = 0; i < 11; ++i) thresholds.push_back(uniform(rng, 1, static_cast<int>(kRows * 95 / 100)));
    std::sort(thresholds.begin(), thresholds.end());
    for (std::size_t i = 0; i < thresholds.size(); ++i) {
      // At least one more batch each time, so that every kill lands at a new point.
      const long long threshold = std::max(thresholds[i], last + 1);
      const long long seen = kill_after(db, args, threshold, std::chrono::milliseconds(uniform(rng, 0, 25)));
      history += " [" + std::to_string(threshold) + ": " + std::to_string(seen) + "]";
      INFO("kills (threshold: rows_seen after):" << history);
      CHECK(seen >= threshold);
      CHECK(seen < kRows);
      CHECK(chunks_off_checkpoint(db, "public.accounts", "id") == 0);  // whole batches, each with its checkpoint
      CHECK(db.value("SELECT status FROM rekey.runs") == "running");   // a killed run cannot say more
      last = seen;
      if (i == 3 || i == 8) REQUIRE_DATA_OK(seeded.check(json{{"mode", "partial"}}));
    }
    INFO("kills (threshold: rows_seen after):" << history);
    const ProcessResult r = run_rekey(args, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);  // every kill resumed, none restarted
    CHECK(latest_rows_seen(db) == kRows);                     // every row seen exactly once
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
  }

  TEST_CASE(
      "an application holding rows locked for seconds: never blocked by rekey, which rotates around them and does "
      "them after the release") {
    REKEY_IT_REQUIRE_DB();
    const std::uint32_t seed = test_seed();
    INFO("REKEY_FI_SEED=" << seed);
    std::mt19937 rng(seed);
    TestDatabase db("app_lock");
    SeededFixture seeded(db, accounts_spec(3000, kClean, 25));
    const TempDir tmp;
    const std::vector<AppValue> values = app_values(100);
    const std::string locked_rows =
        "SELECT id, a_enc, encode(b_enc, 'hex') FROM accounts WHERE id BETWEEN 1241 AND 1245";
    const Rows locked_before = db.query(locked_rows + " ORDER BY id");
    // Rows 1201-1240 share a batch with the locked ones (its first UPDATE holds
    // them while it waits for the lock); the others come after.
    const std::vector<long long> in_batch = valued_rows(db, 1201, 1240);
    const std::vector<long long> others = valued_rows(db, 1246, 3000);
    Session holder(db.conninfo());
    holder.exec("SELECT 1 FROM accounts WHERE id BETWEEN 1241 AND 1245 FOR UPDATE");
    auto app = app_connection(db);
    // About 1 s at the capped rate without the lock.
    auto p = start_rekey(rotate_args(db, {"--batch-size", "100", "--lock-timeout", "200ms", "--max-rate", "3000",
                                          "--threads", "2", "--report", tmp.file("r.json")}),
                         key_env());
    REQUIRE(wait_until([&] { return contains(p->stderr_so_far(), "lock timeout") || !p->running(); }, 30s));
    REQUIRE(p->running());
    const long long seen_when_blocked = latest_rows_seen(db);
    const auto blocked_at = Clock::now();
    // The application keeps the lock about 4 s, updating other rows meanwhile.
    double slowest = 0;
    int updates = 0;
    std::map<long long, AppValue> app_rows;
    while (seconds_since(blocked_at) < 4.0) {
      const long long id = updates % 2 == 0 ? pick(rng, in_batch) : pick(rng, others);
      const AppValue& v = values.at(static_cast<std::size_t>(updates) % values.size());
      const auto t = Clock::now();
      app_update(*app, id, v);
      slowest = std::max(slowest, seconds_since(t));
      app_rows[id] = v;
      ++updates;
      sleep_for(std::chrono::milliseconds(uniform(rng, 20, 80)));
    }
    const long long seen_at_release = latest_rows_seen(db);
    const Rows locked_at_release = db.query(locked_rows + " ORDER BY id");  // plain reads are not blocked
    const double held = seconds_since(blocked_at);
    holder.rollback();
    const auto released_at = Clock::now();
    const ProcessResult r = p->wait(60s);
    const double finish_after_release = seconds_since(released_at);
    const json report = read_report(tmp.file("r.json"));
    MESSAGE("lock held " << held << " s after rekey's first lock timeout; rows_seen " << seen_when_blocked << " then, "
                         << seen_at_release << " at release; " << updates << " application updates, slowest " << slowest
                         << " s; rekey finished " << finish_after_release << " s after release, "
                         << report.at("tables").at(0).at("retries") << " retries");
    INFO(r.describe());
    CHECK(updates > 20);
    CHECK(slowest < 1.0);  // at most about --lock-timeout, waiting on the batch that waits on the lock
    CHECK(seen_at_release >= seen_when_blocked + 1000);  // rekey went on past the locked rows
    CHECK(locked_at_release == locked_before);           // and left them alone while they were held
    CHECK(r.exit_code == 0);
    // The next reading of pending rows, then (see the bug below) one more pause: a few seconds.
    CHECK(finish_after_release < 12.0);
    CHECK(report.at("tables").at(0).at("retries").get<long long>() > 0);
    CHECK(db.count("SELECT count(*) FROM rekey.pending") == 0);
    check_app_rows(db, app_rows);
    // Rows 1241-1245 are checked with the others: rotated after the release.
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "final"}, {"skip", skip_rows(app_rows)}}));
  }

  TEST_CASE("a server crash right after exit 0 keeps every row rekey rewrote (its end waited for the WAL flush)") {
    REKEY_IT_REQUIRE_DB();
    if (!server_under_control()) return;
    TestDatabase db("crash_after_done");
    SeededFixture seeded(db, accounts_spec(3000, kClean, 31));
    // The test server runs with synchronous_commit off; a WAL writer that
    // sleeps 10 s leaves unflushed WAL in shared memory, which an immediate
    // stop loses, unless a commit waited for its flush.
    const SleepyWalWriter sleepy(10s);
    const ServerKeeper keeper;  // destroyed first: the server runs again before the reset
    const ProcessResult r = run_rekey(rotate_args(db, {"--pace", "max"}), key_env());
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    crash_and_restart_server(db);
    CHECK(db.value("SELECT status FROM rekey.runs") == "finished");
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("the gate passes only once the values it saw are on disk: a crash right after its exit 0 undoes none") {
    REKEY_IT_REQUIRE_DB();
    if (!server_under_control()) return;
    TestDatabase db("gate_after_flush");
    SeededFixture seeded(db, accounts_spec(300, kClean, 33));
    db.exec("CREATE TABLE old_values AS SELECT id, a_enc FROM accounts");
    REQUIRE(run_rekey(rotate_args(db, {"--pace", "max"}), key_env()).exit_code == 0);
    db.exec("CREATE TABLE new_values AS SELECT id, a_enc FROM accounts");
    const std::string row = "(SELECT min(id) FROM accounts WHERE a_enc IS NOT NULL)";
    // The row from `values`, committed with synchronous_commit = `sync`.
    const auto set_row = [&](const std::string& values, const std::string& sync) {
      db.exec("BEGIN; SET LOCAL synchronous_commit = " + sync + "; UPDATE accounts a SET a_enc = v.a_enc FROM " +
              values + " v WHERE a.id = v.id AND a.id = " + row + "; COMMIT");
    };
    const SleepyWalWriter sleepy(10s);
    const ServerKeeper keeper;  // destroyed first: the server runs again before the reset
    // On disk: the row back on the old key ('local' waits for the flush). Then in the server's memory
    // only: the row on the new key again, committed without waiting, as rekey's batches are; tried
    // again if the WAL writer wrote it at once.
    bool unwritten = false;
    for (int attempt = 0; attempt < 5 && !unwritten; ++attempt) {
      set_row("old_values", "local");
      set_row("new_values", "off");
      // More than a page header apart: the commit itself is not yet written.
      unwritten = db.value(
                      "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), "
                      "pg_catalog.pg_current_wal_lsn()) > 40") == "t";
    }
    REQUIRE_MESSAGE(unwritten, "the commit's WAL was written at once five times: the crash would prove nothing");
    const std::vector<std::string> gate{"verify", "--db", db.conninfo(), "--column", "accounts.a_enc", "--require-new"};
    const ProcessResult passed = run_rekey(gate, key_env());
    REQUIRE_MESSAGE(passed.exit_code == 0, passed.describe());
    crash_and_restart_server(db);
    const ProcessResult again = run_rekey(gate, key_env());
    CHECK_MESSAGE(again.exit_code == 0, again.describe());
  }

  TEST_CASE("the flush wait: false while a commit's WAL is unwritten (or when stopped), true once it is flushed") {
    REKEY_IT_REQUIRE_DB();
    if (!server_under_control()) return;
    TestDatabase db("flush_wait");
    db.exec("CREATE TABLE t (x int)");
    const SleepyWalWriter sleepy(10s);
    const auto never = [] { return false; };
    std::optional<std::uint64_t> wal_end;
    for (int attempt = 0; attempt < 5 && !wal_end; ++attempt) {
      db.exec("BEGIN; SET LOCAL synchronous_commit = off; INSERT INTO t VALUES (1); COMMIT");
      const rekey::db::ExportedSnapshot snapshot(db.conninfo(), 0ms);
      REQUIRE(snapshot.wal_end());
      if (db.count("SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')") <
          static_cast<long long>(*snapshot.wal_end())) {
        wal_end = snapshot.wal_end();
      }
    }
    REQUIRE_MESSAGE(wal_end, "the commit's WAL was written at once five times: nothing to wait for");
    CHECK_FALSE(rekey::db::wait_until_flushed(db.conninfo(), *wal_end, 0ms, never));
    CHECK_FALSE(rekey::db::wait_until_flushed(db.conninfo(), *wal_end, 60s, [] { return true; }));
    // A commit that waits for its flush flushes all WAL before it.
    db.exec("BEGIN; SET LOCAL synchronous_commit = local; INSERT INTO t VALUES (2); COMMIT");
    CHECK(rekey::db::wait_until_flushed(db.conninfo(), *wal_end, 0ms, never));
  }

  TEST_CASE(
      "rows released after a while: rekey exits as soon as the last pending row settles, with 0, never 75 with none "
      "pending") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("pending_exit");
    SeededFixture seeded(db, accounts_spec(500, kClean, 30));
    Session holder(db.conninfo());
    holder.exec("SELECT 1 FROM accounts WHERE id = 250 FOR UPDATE");
    auto p = start_rekey(rotate_args(db, {"--batch-size", "100", "--lock-timeout", "100ms", "--retry-for", "2s"}),
                         key_env());
    const std::string pending = "SELECT count(*) FROM rekey.pending";
    REQUIRE(wait_until([&] { return (db.schema_exists("rekey") && db.count(pending) > 0) || !p->running(); }, 30s));
    REQUIRE(p->running());
    // Released between the re-reads 1.5 s and 3.1 s into the pending phase (pauses 0.1, 0.2, 0.4, 0.8, 1.6 s).
    sleep_for(2200ms);
    holder.rollback();
    std::optional<Clock::time_point> settled;
    while (p->running()) {
      if (!settled && db.count(pending) == 0) settled = Clock::now();
      sleep_for(5ms);
    }
    const auto exited = Clock::now();
    const ProcessResult r = p->wait(30s);
    INFO(r.describe());
    const long long left = db.count(pending);
    CHECK((r.exit_code == 75) == (left > 0));
    if (left == 0) {
      CHECK(r.exit_code == 0);
      CHECK(std::chrono::duration<double>(exited - settled.value_or(exited)).count() < 1.0);
      REQUIRE_DATA_OK(seeded.check());
    }
  }

  TEST_CASE("a second rotate on the same table exits 2 naming the runner that holds it") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("second_runner");
    SeededFixture seeded(db, accounts_spec(3000, kClean, 27));
    const TempDir tmp;
    const auto args = rotate_args(db, {"--batch-size", "100", "--max-rate", "2000"});
    auto p = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !p->running(); }, 30s));
    REQUIRE(p->running());
    // The backend holding rekey's advisory lock on the table (the two-int form, key 1 "rek").
    const Cell holder = db.value(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND "
        "l.classid = 7497067 AND l.granted AND d.datname = current_database()");
    REQUIRE(holder);
    CHECK(db.value("SELECT application_name FROM pg_stat_activity WHERE pid = " + *holder) == "rekey");
    const ProcessResult second = run_rekey(args, key_env());
    INFO(second.describe());
    CHECK(second.exit_code == 2);
    CHECK(contains(second.err, "public.accounts"));
    CHECK(contains(second.err, "another rekey"));
    CHECK(contains(second.err, "backend pid " + *holder));
    CHECK(contains(second.err, "local socket"));  // the host; REKEY_TEST_DB connects through the Unix socket
    CHECK(second.seconds < 5);
    REQUIRE(p->running());
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
    const ProcessResult r = p->wait(60s);
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("--max-rate under --pace max: the measured rate never exceeds the cap by 10%, nor falls 15% below it") {
    REKEY_IT_REQUIRE_DB();
    constexpr double kRate = 2000;
    constexpr long long kRows = 8000;
    TestDatabase db("max_rate");
    SeededFixture seeded(db, accounts_spec(static_cast<int>(kRows), kClean, 28));
    const TempDir tmp;
    // --pace max: under auto the cap is a ceiling the pace may stay below (this
    // test's own polling is another session to yield to).
    auto p = start_rekey(rotate_args(db, {"--pace", "max", "--max-rate", "2000", "--report", tmp.file("r.json")}),
                         key_env());
    const auto t0 = Clock::now();
    std::vector<std::pair<double, long long>> samples;  // (seconds, rows_seen)
    while (p->running()) {
      samples.emplace_back(seconds_since(t0), latest_rows_seen(db));
      sleep_for(10ms);
    }
    samples.emplace_back(seconds_since(t0), latest_rows_seen(db));
    const ProcessResult r = p->wait(60s);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    const json report = read_report(tmp.file("r.json"));
    REQUIRE(report.at("rows_seen") == kRows);
    const double report_rate = report.at("rows_seen").get<double>() / report.at("duration_seconds").get<double>();
    // From the first committed batch to the last one, as the progress table saw them.
    std::size_t first = 0;
    while (first < samples.size() && samples[first].second <= 0) ++first;
    std::size_t last = first;
    while (last < samples.size() && samples[last].second < kRows) ++last;
    REQUIRE(last < samples.size());
    REQUIRE(samples[last].first - samples[first].first > 2.0);
    const double steady_rate = static_cast<double>(samples[last].second - samples[first].second) /
                               (samples[last].first - samples[first].first);
    // The fastest stretch of at least 2 s (about 20 batches: one more or less is 5%).
    double fastest = 0;
    for (std::size_t i = first; i < last; ++i) {
      std::size_t j = i;
      while (j < last && samples[j].first - samples[i].first < 2.0) ++j;
      if (samples[j].first - samples[i].first < 2.0) break;
      fastest = std::max(
          fastest, static_cast<double>(samples[j].second - samples[i].second) / (samples[j].first - samples[i].first));
    }
    MESSAGE("cap " << kRate << " rows/s: report " << report_rate << " rows/s over " << report.at("duration_seconds")
                   << " s, progress table " << steady_rate << " rows/s, fastest 2 s stretch " << fastest
                   << " rows/s, throttled " << report.at("seconds_throttled") << " s");
    // The report's duration includes the start and the final census; the cap
    // lends no time for them (no burst to catch up), so its rate is lower.
    CHECK(report_rate >= 0.75 * kRate);
    CHECK(report_rate <= 1.1 * kRate);
    // Never a burst over the cap; below it, batches late for their turn are
    // made up for only a little (0.1 s), so a slow moment is not caught up.
    CHECK(steady_rate >= 0.85 * kRate);
    CHECK(steady_rate <= 1.1 * kRate);
    CHECK(fastest <= 1.1 * kRate);
    CHECK(report.at("seconds_throttled").get<double>() > 1.0);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE(
      "--pause-file: nothing is written while it exists, at the start or mid-run; the run completes after it "
      "is removed") {
    REKEY_IT_REQUIRE_DB();
    constexpr long long kRows = 4000;
    TestDatabase db("pause_file");
    SeededFixture seeded(db, accounts_spec(static_cast<int>(kRows), kClean, 29));
    const TempDir tmp;
    const std::string pause = tmp.file("pause");
    write_file(pause, "");
    const auto fingerprint = [&] {
      return db.checksum("public.accounts", "id") + db.row_versions("public.accounts", "id");
    };
    const std::string before = fingerprint();
    auto p = start_rekey(rotate_args(db, {"--batch-size", "100", "--max-rate", "2000", "--pause-file", pause,
                                          "--report", tmp.file("r.json")}),
                         key_env());
    // The run and its progress row exist; then nothing moves for 2 s.
    REQUIRE(wait_until([&] { return latest_rows_seen(db) == 0 || !p->running(); }, 30s));
    REQUIRE(p->running());
    const auto paused_at = Clock::now();
    long long most = 0;
    while (seconds_since(paused_at) < 2.0) {
      most = std::max(most, latest_rows_seen(db));
      sleep_for(50ms);
    }
    CHECK(most == 0);
    CHECK(fingerprint() == before);
    CHECK(contains(p->stderr_so_far(), "paused"));
    REQUIRE(p->running());
    REQUIRE(std::remove(pause.c_str()) == 0);

    // Paused again mid-run: after the batches already read are written, rows_seen stays put.
    REQUIRE(wait_until([&] { return latest_rows_seen(db) >= 1000 || !p->running(); }, 30s));
    write_file(pause, "");
    sleep_for(500ms);
    const long long settled = latest_rows_seen(db);
    const std::string mid = fingerprint();
    sleep_for(1000ms);
    CHECK(latest_rows_seen(db) == settled);
    CHECK(fingerprint() == mid);
    CHECK(settled < kRows);
    REQUIRE(p->running());
    REQUIRE(std::remove(pause.c_str()) == 0);

    const ProcessResult r = p->wait(60s);
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    const json report = read_report(tmp.file("r.json"));
    MESSAGE("paused " << report.at("seconds_paused") << " s in all; mid-run pause at rows_seen " << settled);
    CHECK(report.at("seconds_paused").get<double>() >= 2.5);
    REQUIRE_DATA_OK(seeded.check());
  }
}

TEST_SUITE("integration.faults") {
  TEST_CASE("a run that ends in an error is marked failed, reported and audited, and resumes to the end") {
    REKEY_IT_REQUIRE_DB();
    const std::uint32_t seed = test_seed();
    INFO("REKEY_FI_SEED=" << seed);
    std::mt19937 rng(seed);
    TestDatabase db("run_fails");
    SeededFixture seeded(db, accounts_spec(1500, kClean, static_cast<int>(seed % 1000)));
    // A trigger of the application's that refuses updates from a row on (some
    // row past it holds an old-key value): an error no retry can get past.
    const int refused = uniform(rng, 200, 1400);
    db.exec(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id >= " +
        std::to_string(refused) +
        " THEN RAISE EXCEPTION 'refused by the application'; END IF; "
        "RETURN NEW; END $$");
    db.exec("CREATE TRIGGER refuse BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION refuse()");
    const TempDir tmp;
    const auto args = rotate_args(db, {"--batch-size", "100", "--retry-for", "1s", "--report", tmp.file("r.json"),
                                       "--audit-log", tmp.file("audit.log")});
    const ProcessResult failed = run_rekey(args, key_env());
    INFO(failed.describe());
    CHECK(failed.exit_code == 1);
    CHECK(contains(failed.err, "refused by the application"));
    CHECK(db.value("SELECT status || ' ' || exit_code FROM rekey.runs") == "failed 1");
    const json report = json::parse(read_file(tmp.file("r.json")));
    CHECK(report.at("status") == "failed");
    CHECK(report.at("exit_code") == 1);
    CHECK(contains(report.at("error").get<std::string>(), "refused by the application"));
    const std::string audit = read_file(tmp.file("audit.log"));
    const json last = json::parse(audit.substr(audit.rfind('\n', audit.size() - 2) + 1));
    CHECK(last.at("event") == "run_stop");
    CHECK(last.at("status") == "failed");
    // Nothing lost: every value holds its plaintext, under the old key or the new.
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "partial"}}));

    db.exec("DROP TRIGGER refuse ON accounts");
    const ProcessResult resumed = run_rekey(args, key_env());
    INFO(resumed.describe());
    CHECK(resumed.exit_code == 0);
    CHECK(contains(resumed.err, "resuming run 1"));
    CHECK(db.value("SELECT status || ' ' || exit_code FROM rekey.runs") == "finished 0");
    REQUIRE_DATA_OK(seeded.check());
  }
}
