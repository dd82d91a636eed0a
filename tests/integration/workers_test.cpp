// Cooperative workers against a real PostgreSQL: lanes of one process and
// processes joining one run (--join) share its work units under leases; data
// is judged afterwards by Python's cryptography (tests/pg/fixture.py).
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

const json kClean = json{{"old", 7}, {"new", 2}, {"null", 1}};

json one_table(int rows, int seed) {
  const json t{
      {"schema", "public"},
      {"table", "accounts"},
      {"rows", rows},
      {"pk", json::array({json{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}})},
      {"columns", json::array({json{{"name", "a_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", kClean}},
                               json{{"name", "b_enc"}, {"type", "bytea"}, {"format", "wrapped"}, {"mix", kClean}}})}};
  return json{{"seed", seed},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
              {"tables", json::array({t})}};
}

std::vector<std::string> worker(const TestDatabase& db, const std::string& name, const std::vector<std::string>& more) {
  std::vector<std::string> args{
      "rotate",        "--db", db.conninfo(),  "--column", "accounts.a_enc", "--column", "accounts.b_enc",
      "--worker-name", name,   "--chunk-rows", "1500",     "--batch-size",   "100"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Every range unit's checkpoint as last seen, which must never go backwards.
class CheckpointWatch {
 public:
  explicit CheckpointWatch(TestDatabase& db) : db_(db) {}
  // Reads the checkpoints once, noting any that moved back.
  void look() {
    if (!db_.schema_exists("rekey")) return;
    const Cell rows = db_.value(
        "SELECT string_agg(chunk || ':' || (last_key->>0), ',') FROM rekey.chunks WHERE kind = 'range' AND "
        "last_key IS NOT NULL");
    if (!rows) return;
    std::size_t from = 0;
    while (from < rows->size()) {
      std::size_t end = rows->find(',', from);
      if (end == std::string::npos) end = rows->size();
      const std::string item = rows->substr(from, end - from);
      const int chunk = std::stoi(item.substr(0, item.find(':')));
      const long long key = std::stoll(item.substr(item.find(':') + 1));
      if (key < last_[chunk]) backwards_ += " chunk " + std::to_string(chunk);
      last_[chunk] = std::max(last_[chunk], key);
      from = end + 1;
    }
  }
  const std::string& backwards() const { return backwards_; }

 private:
  TestDatabase& db_;
  std::map<int, long long> last_;
  std::string backwards_;
};

void check_run_finished(TestDatabase& db) {
  CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
  CHECK(db.value("SELECT status || ' ' || exit_code FROM rekey.runs") == "finished 0");
  CHECK(db.count("SELECT count(*) FROM rekey.chunks WHERE status <> 'done'") == 0);
  CHECK(chunks_off_checkpoint(db, "public.accounts", "id") == 0);
}

}  // namespace

TEST_SUITE("integration.workers") {
  TEST_CASE("two workers with --join, one killed (kill -9) at a random point: the other finishes the run") {
    REKEY_IT_REQUIRE_DB();
    std::mt19937 rng(static_cast<unsigned>(std::random_device{}()));
    const unsigned seed = rng();
    INFO("seed " << seed);
    std::mt19937 pick(seed);
    for (int round = 0; round < 2; ++round) {
      TestDatabase db("join_kill");
      SeededFixture seeded(db, one_table(12000, 30 + round));
      auto a = start_rekey(worker(db, "A", {"--workers", "2", "--max-rate", "4000", "--lease", "3s"}), key_env());
      REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !a->running(); }, 30s, 2ms));
      auto b =
          start_rekey(worker(db, "B", {"--join", "--workers", "2", "--max-rate", "4000", "--lease", "3s"}), key_env());
      const long long kill_at = 500 + static_cast<long long>(pick() % 8000);
      REQUIRE(wait_until([&] { return latest_rows_seen(db) >= kill_at || !a->running(); }, 60s, 2ms));
      a->signal(SIGKILL);
      const ProcessResult killed = a->wait(30s);
      INFO("A: " << killed.describe());
      CHECK(killed.term_signal == SIGKILL);
      const ProcessResult r = b->wait(120s);
      INFO("killed A at " << kill_at << " rows; B: " << r.describe());
      CHECK(r.exit_code == 0);
      check_run_finished(db);
      REQUIRE_DATA_OK(seeded.check());
    }
  }

  TEST_CASE("a worker SIGSTOPped past its lease: another takes its unit, and its next write is fenced") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("sigstop");
    SeededFixture seeded(db, one_table(9000, 41));
    CheckpointWatch watch(db);
    auto a = start_rekey(worker(db, "A", {"--workers", "1", "--max-rate", "1500", "--lease", "2s"}), key_env());
    const auto a_holds_rows = [&] {
      watch.look();
      return db.count("SELECT count(*) FROM rekey.chunks WHERE owner = 'A' AND status = 'running' AND rows_seen > 0") >
             0;
    };
    REQUIRE(wait_until([&] { return (db.schema_exists("rekey") && a_holds_rows()) || !a->running(); }, 30s, 5ms));
    a->signal(SIGSTOP);
    const Cell held = db.value("SELECT chunk FROM rekey.chunks WHERE owner = 'A' AND status = 'running'");
    REQUIRE(held);
    auto b = start_rekey(worker(db, "B", {"--join", "--workers", "1", "--lease", "2s"}), key_env());
    const bool taken = wait_until(
        [&] {
          watch.look();
          return db.value("SELECT owner FROM rekey.chunks WHERE kind = 'range' AND chunk = " + *held) == Cell("B");
        },
        60s, 10ms);
    a->signal(SIGCONT);
    INFO("B so far: " << b->stderr_so_far());
    INFO("units: " << db.value("SELECT string_agg(chunk || ' ' || status || ' ' || coalesce(owner, '-') || ' ' || "
                               "epoch || ' ' || coalesce(lease_until::text, '-'), '; ') FROM rekey.chunks")
                          .value_or("none"));
    REQUIRE(taken);
    while (a->running() || b->running()) {
      watch.look();
      std::this_thread::sleep_for(5ms);
    }
    const ProcessResult ra = a->wait(10s);
    const ProcessResult rb = b->wait(10s);
    INFO("A: " << ra.describe() << "\nB: " << rb.describe());
    CHECK(contains(ra.err, "passed to another worker"));
    CHECK(ra.exit_code == 0);  // it waited for the run, which finished
    CHECK(rb.exit_code == 0);
    CHECK(watch.backwards().empty());
    check_run_finished(db);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE(
      "a second worker is refused (exit 2) without --join, with another key, or missing an old key; status "
      "shows the workers; a joiner with --no-wait leaves (75) while the run goes on") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("no_join");
    SeededFixture seeded(db, one_table(6000, 42));
    auto a = start_rekey(worker(db, "A", {"--workers", "1", "--max-rate", "300"}),
                         key_env());  // slow: it still holds a unit when F leaves
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !a->running(); }, 30s, 2ms));
    const ProcessResult second = run_rekey(worker(db, "B", {}), key_env());
    INFO(second.describe());
    CHECK(second.exit_code == 2);
    CHECK(contains(second.err, "run 1 is running (workers: A)"));
    CHECK(contains(second.err, "--join"));
    const ProcessResult other_key = run_rekey(worker(db, "C", {"--join"}), key_env(kOtherPassphrase));
    INFO(other_key.describe());
    CHECK(other_key.exit_code == 2);  // one new key per run
    const ProcessResult missing_old = run_rekey(worker(db, "D", {"--join"}), key_env(kNewPassphrase, kOtherPassphrase));
    INFO(missing_old.describe());
    CHECK(missing_old.exit_code == 2);  // it would record the run's values as undecryptable
    CHECK(contains(missing_old.err, "join it with all of its old keys"));
    const ProcessResult restart = run_rekey(worker(db, "E", {"--join", "--restart"}), key_env());
    CHECK(restart.exit_code == 2);
    const ProcessResult status = run_rekey({"status", "--db", db.conninfo()}, key_env());
    INFO(status.describe());
    CHECK(contains(status.out, "work units: "));
    CHECK(contains(status.out, "worker A: range "));
    // A joiner that will not wait: it takes what it can, then leaves the unit A holds to A (exit 75).
    const ProcessResult helper = run_rekey(worker(db, "F", {"--join", "--no-wait", "--workers", "1"}), key_env());
    INFO(helper.describe());
    CHECK(helper.exit_code == 75);
    CHECK(db.count("SELECT count(*) FROM rekey.chunks WHERE owner = 'F' AND status = 'done'") > 0);
    CHECK(db.value("SELECT status FROM rekey.runs") == "running");  // A goes on
    const ProcessResult r = a->wait(60s);
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    check_run_finished(db);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("four lanes over a composite key, a text key under a non-C collation and a small table") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("lanes_shapes");
    const auto column = [](const std::string& name, const std::string& type, const std::string& format) {
      return json{{"name", name}, {"type", type}, {"format", format}, {"mix", kClean}};
    };
    const json tables =
        json::array({json{{"schema", "public"},
                          {"table", "pairs"},
                          {"rows", 5000},
                          {"pk", json::array({json{{"name", "tenant"}, {"type", "int"}, {"gen", "int"}},
                                              json{{"name", "code"}, {"type", "text"}, {"gen", "text"}}})},
                          {"columns", json::array({column("v_enc", "text", "plain")})}},
                     json{{"schema", "public"},
                          {"table", "named"},
                          {"rows", 5000},
                          {"pk", json::array({json{{"name", "name"}, {"type", "text"}, {"gen", "text"}}})},
                          {"columns", json::array({column("v_enc", "bytea", "wrapped")})}},
                     json{{"schema", "public"},
                          {"table", "tiny"},
                          {"rows", 3},
                          {"pk", json::array({json{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}})},
                          {"columns", json::array({column("v_enc", "text", "plain")})}}});
    SeededFixture seeded(db, json{{"seed", 43},
                                  {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
                                  {"tables", tables}});
    const bool icu = db.count("SELECT count(*) FROM pg_collation WHERE collname = 'en-US-x-icu'") > 0;
    const std::string collation = icu ? "\"en-US-x-icu\"" : "\"C\"";
    MESSAGE("text key collation " << collation);
    db.exec("ALTER TABLE named ALTER COLUMN name TYPE text COLLATE " + collation);
    const ProcessResult r =
        run_rekey({"rotate", "--db", db.conninfo(), "--column", "pairs.v_enc", "--column", "named.v_enc", "--column",
                   "tiny.v_enc", "--workers", "4", "--chunk-rows", "400", "--batch-size", "150"},
                  key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(db.count("SELECT count(*) FROM rekey.chunks WHERE kind = 'range' AND table_name = 'public.named'") >= 8);
    CHECK(db.count("SELECT count(*) FROM rekey.chunks WHERE kind = 'range' AND table_name = 'public.tiny'") == 1);
    CHECK(db.count("SELECT count(DISTINCT owner) FROM rekey.chunks") >= 1);
    CHECK(db.count("SELECT sum(rows_seen) FROM rekey.chunks WHERE kind = 'range'") == 10003);
    REQUIRE_DATA_OK(seeded.check());
    const ProcessResult gate = run_rekey({"verify", "--db", db.conninfo(), "--column", "pairs.v_enc", "--column",
                                          "named.v_enc", "--column", "tiny.v_enc", "--require-new"},
                                         key_env());
    INFO(gate.describe());
    CHECK(gate.exit_code == 0);
  }
}
