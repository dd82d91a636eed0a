// --pace auto against a real PostgreSQL: the pace starts gently beside another
// session, backs off when sessions wait on locks, says why in its report, its
// metrics and `rekey status`, and runs free once the database is idle again;
// every row judged by Python's cryptography afterwards (tests/pg/fixture.py).
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

json accounts(int rows, int seed) {
  const json mix{{"old", 7}, {"new", 2}, {"null", 1}};
  const json t{
      {"schema", "public"},
      {"table", "accounts"},
      {"rows", rows},
      {"pk", json::array({json{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}})},
      {"columns", json::array({json{{"name", "a_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", mix}}})}};
  return json{{"seed", seed},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
              {"tables", json::array({t})}};
}

// A session of another application, running `sql` on a thread of its own
// until it returns or is cancelled (cancel()).
class AppSession {
 public:
  AppSession(const std::string& conninfo, const std::string& sql)
      : conn_(std::make_unique<pqxx::connection>(conninfo)), thread_([this, sql] {
          try {
            pqxx::nontransaction tx(*conn_);
            tx.exec("SET application_name = 'app'");
            tx.exec(sql);
          } catch (const std::exception&) {  // cancelled
          }
        }) {}
  ~AppSession() {
    cancel();
    thread_.join();
  }
  void cancel() { conn_->cancel_query(); }

 private:
  std::unique_ptr<pqxx::connection> conn_;
  std::thread thread_;
};

bool pace_says(TestDatabase& db, const std::string& words) {
  return db.count("SELECT count(*) FROM rekey.pace WHERE reason LIKE '%" + words + "%'") > 0;
}

bool report_has(const json& report, const std::string& words) {
  for (const auto& c : report.at("pace").at("changes")) {
    if (contains(c.at("reason").get<std::string>(), words)) return true;
  }
  return false;
}

}  // namespace

TEST_SUITE("integration.pace") {
  TEST_CASE("--pace auto: gentle beside another session, backs off for lock waits, free once alone; every row right") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("pace_waits");
    SeededFixture seeded(db, accounts(40000, 61));
    db.exec("CREATE TABLE side (id int)");
    const TempDir tmp;
    auto sleeper = std::make_unique<AppSession>(db.conninfo(), "SELECT pg_sleep(120)");
    auto rekey = start_rekey({"rotate", "--db", db.conninfo(), "--column", "accounts.a_enc", "--report",
                              tmp.file("r.json"), "--metrics-file", tmp.file("m.prom")},
                             key_env());
    // Another session is there: a gentle start, published in the state schema.
    REQUIRE(wait_until([&] { return db.schema_exists("rekey") && pace_says(db, "starting gently"); }, 30s, 20ms));
    // Sessions queue behind a lock: the pace backs off and says why.
    Session holder(db.conninfo());
    holder.exec("LOCK TABLE side IN ACCESS EXCLUSIVE MODE");
    std::vector<std::unique_ptr<AppSession>> waiters;
    for (int i = 0; i < 4; ++i) waiters.push_back(std::make_unique<AppSession>(db.conninfo(), "SELECT * FROM side"));
    CHECK_MESSAGE(wait_until([&] { return pace_says(db, "waiting on locks"); }, 20s, 20ms), rekey->stderr_so_far());
    REQUIRE_MESSAGE(rekey->running(), "rekey ended before the sessions queued: the table is too small to see it");
    const ProcessResult status = run_rekey({"status", "--db", db.conninfo()}, key_env());
    CHECK_MESSAGE(contains(status.out, "pace of "), status.out);
    holder.rollback();
    waiters.clear();
    sleeper.reset();
    const ProcessResult r = rekey->wait();
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.err, "sessions waiting on locks or WAL"));  // a back-off is logged
    // The metrics file, written last when rekey ends (and every few seconds before).
    CHECK(contains(read_file(tmp.file("m.prom")), "rekey_pace_rows_per_second{"));
    CHECK(contains(read_file(tmp.file("m.prom")), "mode=\"auto\""));
    const json report = read_report(tmp.file("r.json"));
    CHECK(report.at("pace").at("mode") == "auto");
    CHECK(report_has(report, "starting gently"));
    CHECK(report_has(report, "waiting on locks"));
    CHECK(report.at("pace").at("probe_baseline_ms").get<double>() > 0);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("--pace max: no pace is kept, and the report says so") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("pace_max");
    SeededFixture seeded(db, accounts(3000, 62));
    const TempDir tmp;
    const ProcessResult r = run_rekey({"rotate", "--db", db.conninfo(), "--column", "accounts.a_enc", "--pace", "max",
                                       "--report", tmp.file("r.json")},
                                      key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json report = read_report(tmp.file("r.json"));
    CHECK(report.at("pace").at("mode") == "max");
    CHECK(report.at("pace").at("changes").empty());
    CHECK(db.count("SELECT count(*) FROM rekey.pace") == 0);
    const ProcessResult bad =
        run_rekey({"rotate", "--db", db.conninfo(), "--column", "accounts.a_enc", "--pace", "fast"}, key_env());
    CHECK(bad.exit_code == 2);
    REQUIRE_DATA_OK(seeded.check());
  }
}
