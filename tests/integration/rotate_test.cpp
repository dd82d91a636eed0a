// Integration tests of `rekey rotate` against a real PostgreSQL (REKEY_TEST_DB):
// data is seeded and every row checked afterwards by Python's cryptography
// (tests/pg/fixture.py), the peer rekey must stay compatible with.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- spec building

json pk(const std::string& name, const std::string& type, const std::string& gen) {
  return json{{"name", name}, {"type", type}, {"gen", gen}};
}

const json kMixed = json{{"old", 6}, {"new", 2}, {"garbage", 1}, {"null", 1}};
const json kClean = json{{"old", 7}, {"new", 2}, {"null", 1}};

json col(const std::string& name, const std::string& type, const std::string& format, const json& mix = kMixed) {
  return json{{"name", name}, {"type", type}, {"format", format}, {"mix", mix}};
}

json table(const std::string& schema, const std::string& name, int rows, json pks, json cols) {
  return json{
      {"schema", schema}, {"table", name}, {"rows", rows}, {"pk", std::move(pks)}, {"columns", std::move(cols)}};
}

json spec(json tables, int seed = 1) {
  return json{{"seed", seed},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
              {"tables", std::move(tables)}};
}

// Requires the checker's verdict to be ok, showing its first errors otherwise.

std::vector<std::string> rotate_cmd(const TestDatabase& db, const std::vector<std::string>& more) {
  std::vector<std::string> args{"rotate", "--db", db.conninfo()};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

void check_no_secret(const std::string& where, const std::string& text) {
  for (const char* passphrase : {kOldPassphrase, kNewPassphrase, kOtherPassphrase}) {
    const auto forms = secret_forms(passphrase);
    for (std::size_t i = 0; i < forms.size(); ++i) {
      INFO(where << " must not contain a key (form " << i << " of secret_forms(), not shown)");
      CHECK_FALSE(contains(text, forms[i]));
    }
  }
}

const std::string kBigColumnsA = "public.big.a_enc";
const std::string kBigColumnsB = "public.big.b_enc";

json big_table_spec(int rows, const json& mix_b = kMixed) {
  return spec(json::array({table(
                  "public", "big", rows, json::array({pk("id", "bigint", "int")}),
                  json::array({col("a_enc", "text", "plain", kClean), col("b_enc", "bytea", "wrapped", mix_b)}))}),
              7);
}

}  // namespace

TEST_SUITE("integration.rotate") {
  TEST_CASE("one run over several tables: bigint, uuid, text and composite keys; text and bytea; plain and wrapped") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("many_tables");
    SeededFixture seeded(
        db, spec(json::array({
                table("public", "accounts", 300, json::array({pk("id", "bigint", "bigint")}),
                      json::array({col("iban_enc", "text", "plain"), col("doc_enc", "bytea", "wrapped")})),
                table("public", "devices", 200, json::array({pk("id", "uuid", "uuid")}),
                      json::array({col("token_enc", "text", "wrapped"), col("blob_enc", "bytea", "plain")})),
                table("public", "notes", 150, json::array({pk("k", "text", "text")}),
                      json::array({col("note_enc", "varchar", "plain")})),
                table("public", "codes", 60, json::array({pk("code", "character(12)", "name")}),
                      json::array({col("secret_enc", "varchar(500)", "wrapped")})),
                table("billing", "invoices", 250, json::array({pk("tenant", "int", "mod:7"), pk("id", "text", "text")}),
                      json::array({col("amount_enc", "text", "wrapped"), col("memo_enc", "bytea", "plain")})),
            })));
    const TempDir tmp;
    const std::vector<std::string> columns{"--column",     "accounts.iban_enc",
                                           "--column",     "public.accounts.doc_enc",
                                           "--column",     "devices.token_enc",
                                           "--column",     "devices.blob_enc",
                                           "--column",     "notes.note_enc",
                                           "--column",     "billing.invoices.amount_enc",
                                           "--column",     "billing.invoices.memo_enc",
                                           "--column",     "codes.secret_enc",
                                           "--batch-size", "37",
                                           "--threads",    "2"};
    auto args = rotate_cmd(db, columns);
    args.insert(args.end(), {"--report", tmp.file("report.json")});
    const ProcessResult r = run_rekey(args, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 3);  // garbage present

    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    const json report = read_report(tmp.file("report.json"));
    check_report_counts(report, result.at("counts"));
    CHECK(report.at("exit_code") == 3);
    CHECK(report.at("status") == "finished");
    CHECK(db.value("SELECT status || ' ' || exit_code FROM rekey.runs") == "finished 3");
    CHECK(db.count("SELECT count(*) FROM rekey.table_progress WHERE done") == 5);

    SUBCASE("a rerun rewrites nothing") {
      const std::vector<std::pair<std::string, std::string>> tables{{"public.accounts", "id"},
                                                                    {"public.devices", "id"},
                                                                    {"public.notes", "k"},
                                                                    {"public.codes", "code"},
                                                                    {"billing.invoices", "tenant, id"}};
      std::vector<std::string> before;
      for (const auto& [t, order] : tables) before.push_back(db.checksum(t, order) + db.row_versions(t, order));
      auto again = rotate_cmd(db, columns);
      again.insert(again.end(), {"--report", tmp.file("again.json")});
      const ProcessResult r2 = run_rekey(again, key_env());
      INFO(r2.describe());
      CHECK(r2.exit_code == 3);
      for (std::size_t i = 0; i < tables.size(); ++i) {
        INFO("table " << tables[i].first);
        CHECK(db.checksum(tables[i].first, tables[i].second) + db.row_versions(tables[i].first, tables[i].second) ==
              before[i]);
      }
      const json report2 = read_report(tmp.file("again.json"));
      for (const auto& t : report2.at("tables")) {
        for (const auto& c : t.at("columns")) {
          INFO(t.at("table") << "." << c.at("column"));
          CHECK(c.at("rotated") == 0);
          const json& e =
              result.at("counts").at(t.at("table").get<std::string>()).at(c.at("column").get<std::string>());
          CHECK(c.at("already_new").get<long long>() ==
                e.at("rotated").get<long long>() + e.at("already_new").get<long long>());
          CHECK(c.at("undecryptable") == e.at("undecryptable"));
        }
      }
      REQUIRE_DATA_OK(seeded.check());
    }
  }

  TEST_CASE("exit 0 when every value ends under the new key, and a rerun rewrites nothing") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("clean");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 400, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain", kClean),
                                                                  col("email_enc", "bytea", "wrapped", kClean)}))})));
    const TempDir tmp;
    const auto args = rotate_cmd(db, {"--column", "users.phone_enc", "--column", "users.email_enc", "--batch-size",
                                      "100", "--report", tmp.file("r.json")});
    const ProcessResult r = run_rekey(args, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
    CHECK(contains(r.out, "finished"));

    const std::string before = db.checksum("public.users", "id") + db.row_versions("public.users", "id");
    const ProcessResult again = run_rekey(args, key_env());
    INFO(again.describe());
    CHECK(again.exit_code == 0);
    CHECK(db.checksum("public.users", "id") + db.row_versions("public.users", "id") == before);
    const json report = read_report(tmp.file("r.json"));
    for (const auto& c : report.at("tables").at(0).at("columns")) CHECK(c.at("rotated") == 0);
    CHECK(db.count("SELECT count(*) FROM rekey.runs WHERE status = 'finished' AND exit_code = 0") == 2);
  }

  TEST_CASE("quoted identifiers: mixed case, spaces, quotes, dots and reserved words") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("quoted");
    SeededFixture seeded(db,
                         spec(json::array({
                             table("Vault Data", "Accounts", 120, json::array({pk("Account Id", "bigint", "bigint")}),
                                   json::array({col("Routing Enc", "text", "plain", kClean),
                                                col("Acct \"No\". Enc", "bytea", "wrapped", kClean)})),
                             table("public", "user", 50, json::array({pk("Order", "text", "name")}),
                                   json::array({col("select", "text", "wrapped", kClean)})),
                         })));
    const TempDir tmp;
    const ProcessResult r =
        run_rekey(rotate_cmd(db, {"--column", "\"Vault Data\".\"Accounts\".\"Routing Enc\"", "--column",
                                  "\"Vault Data\".\"Accounts\".\"Acct \"\"No\"\". Enc\"", "--column",
                                  "\"user\".\"select\"", "--batch-size", "16", "--report", tmp.file("r.json")}),
                  key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    const json report = read_report(tmp.file("r.json"));
    check_report_counts(report, result.at("counts"));
    CHECK(contains(report.dump(), "\"Vault Data\\\".\\\"Accounts\\\""));

    SUBCASE("an unquoted spelling folds to lower case and does not find the table") {
      const ProcessResult r2 =
          run_rekey(rotate_cmd(db, {"--column", "\"Vault Data\".Accounts.\"Routing Enc\""}), key_env());
      INFO(r2.describe());
      CHECK(r2.exit_code == 2);
      CHECK(contains(r2.err, "accounts"));
    }
  }

  TEST_CASE("kill -9 at three points, then the same command finishes: no row lost, none encrypted twice") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("kill9");
    SeededFixture seeded(db, big_table_spec(30000, json{{"old", 8}, {"new", 1}, {"garbage", 1}, {"null", 1}}));
    const TempDir tmp;
    // The rate cap keeps the run long enough (about 3 s) for every kill point to land mid-run.
    const auto args = rotate_cmd(db, {"--column", kBigColumnsA, "--column", kBigColumnsB, "--batch-size", "500",
                                      "--max-rate", "10000", "--report", tmp.file("r.json")});
    long long last = 0;
    for (const long long threshold : {1LL, 10000LL, 20000LL}) {
      const long long seen = kill_after(db, args, threshold);
      INFO("killed at rows_seen " << seen << " (threshold " << threshold << ")");
      CHECK(seen >= threshold);
      CHECK(seen > last);
      CHECK(seen < 30000);
      CHECK(chunks_off_checkpoint(db, "public.big", "id") == 0);  // whole batches, each with its checkpoint
      last = seen;
      CHECK(db.value("SELECT status FROM rekey.runs") == "running");  // a killed run cannot say more
      if (threshold == 10000) REQUIRE_DATA_OK(seeded.check(json{{"mode", "partial"}}));
    }
    const ProcessResult r = run_rekey(args, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);  // the killed run was resumed, not restarted
    CHECK(db.count("SELECT sum(rows_seen) FROM rekey.chunks WHERE kind = 'range'") == 30000);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
  }

  TEST_CASE("--max-duration stops with exit 75 and progress saved; a rerun finishes") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("deadline");
    // The small table is done before the deadline, the big one (about 7 s at the capped rate) is not.
    SeededFixture seeded(db, spec(json::array({table("public", "small", 200, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("b_enc", "bytea", "wrapped", kClean)})),
                                               table("public", "big", 20000, json::array({pk("id", "uuid", "uuid")}),
                                                     json::array({col("a_enc", "text", "plain", kClean)}))})));
    const TempDir tmp;
    const std::vector<std::string> columns{"--column", "small.b_enc", "--column", "big.a_enc"};
    auto first = rotate_cmd(db, columns);
    first.insert(first.end(),
                 {"--batch-size", "10", "--max-rate", "3000", "--max-duration", "1s", "--report", tmp.file("r.json")});
    const ProcessResult r = run_rekey(first, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 75);
    CHECK(r.seconds < 10);
    const json report = read_report(tmp.file("r.json"));
    CHECK(report.at("status") == "stopped");
    CHECK(report.at("stop_reason") == "deadline");
    CHECK(report.at("tables").at(0).at("completed") == true);
    CHECK(report.at("tables").at(1).at("completed") == false);
    CHECK(db.value("SELECT status || ' ' || exit_code FROM rekey.runs") == "stopped 75");
    CHECK(db.value("SELECT done::text || ' ' || (SELECT sum(rows_seen) FROM rekey.chunks c WHERE c.table_name = "
                   "p.table_name AND kind = 'range') FROM rekey.table_progress p WHERE table_name = 'public.small'") ==
          "true 200");
    const long long seen =
        db.count("SELECT sum(rows_seen) FROM rekey.chunks WHERE table_name = 'public.big' AND kind = 'range'");
    MESSAGE("big table: " << seen << " of 20000 rows seen before the deadline");
    CHECK(seen > 0);
    CHECK(seen < 20000);
    CHECK(db.value("SELECT bool_or(c.last_key IS NOT NULL) AND NOT bool_or(p.done) FROM rekey.chunks c JOIN "
                   "rekey.table_progress p USING (run_id, table_name) WHERE table_name = 'public.big'") == "t");
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "partial"}}));

    auto again = rotate_cmd(db, columns);
    again.insert(again.end(), {"--batch-size", "500", "--report", tmp.file("r.json")});
    const ProcessResult r2 = run_rekey(again, key_env());
    INFO(r2.describe());
    CHECK(r2.exit_code == 0);
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
    CHECK(db.count("SELECT sum(c.rows_seen) FROM rekey.chunks c JOIN rekey.table_progress p USING (run_id, "
                   "table_name) WHERE p.done AND c.kind = 'range'") == 20200);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    // Run totals across both invocations, the finished table's included.
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
  }

  TEST_CASE("SIGTERM stops with exit 75 within seconds; a second rekey meanwhile is refused; a rerun finishes") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("sigterm");
    SeededFixture seeded(db, big_table_spec(20000));
    const TempDir tmp;
    const auto args = rotate_cmd(db, {"--column", kBigColumnsA, "--column", kBigColumnsB, "--batch-size", "20",
                                      "--max-rate", "5000", "--report", tmp.file("r.json")});
    auto p = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_rows_seen(db) > 0 || !p->running(); }, 60s, 1ms));
    REQUIRE(p->running());

    SUBCASE("a second rekey on the same table is refused while the first runs") {
      const ProcessResult second =
          run_rekey(rotate_cmd(db, {"--column", kBigColumnsA, "--column", kBigColumnsB}), key_env());
      INFO(second.describe());
      CHECK(second.exit_code == 2);
      CHECK(contains(second.err, "public.big"));
      CHECK(contains(second.err, "another rekey"));
      REQUIRE(p->running());
    }

    const auto sent = std::chrono::steady_clock::now();
    p->signal(SIGTERM);
    const ProcessResult r = p->wait(30s);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
    INFO(r.describe());
    CHECK(r.exit_code == 75);
    CHECK(took < 5.0);
    const json report = read_report(tmp.file("r.json"));
    CHECK(report.at("stop_reason") == "signal");
    CHECK(db.value("SELECT status FROM rekey.runs") == "stopped");
    CHECK(latest_rows_seen(db) < 20000);
    wait_for_rekey_sessions_to_end(db);

    const ProcessResult again =
        run_rekey(rotate_cmd(db, {"--column", kBigColumnsA, "--column", kBigColumnsB, "--report", tmp.file("r.json")}),
                  key_env());
    INFO(again.describe());
    CHECK(again.exit_code == 3);  // garbage in b_enc
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
  }

  TEST_CASE("--dry-run writes nothing and creates no state schema") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("dry_run");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 300, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain", kClean),
                                                                  col("doc_enc", "bytea", "wrapped", kClean)}))})));
    const std::string before = db.checksum("public.users", "id") + db.row_versions("public.users", "id");
    const TempDir tmp;
    const ProcessResult r =
        run_rekey(rotate_cmd(db, {"--column", "users.phone_enc", "--column", "users.doc_enc", "--dry-run",
                                  "--batch-size", "64", "--report", tmp.file("r.json")}),
                  key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "DRY RUN"));
    CHECK(db.checksum("public.users", "id") + db.row_versions("public.users", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "untouched"}, {"state_schema", nullptr}}));
    const json report = read_report(tmp.file("r.json"));
    CHECK(report.at("dry_run") == true);
    // What it would do is what a real run then does.
    const json expected = seeded.check(json{{"mode", "partial"}, {"state_schema", nullptr}}).at("counts");
    check_report_counts(report, expected);
  }

  TEST_CASE("a different new key while a run is stopped: exit 2; with --restart it proceeds") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("restart");
    SeededFixture seeded(db, spec(json::array({table("public", "big", 20000, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("a_enc", "text", "wrapped", kClean)}))})));
    const ProcessResult first = run_rekey(
        rotate_cmd(db, {"--column", "big.a_enc", "--batch-size", "20", "--max-rate", "3000", "--max-duration", "1s"}),
        key_env());
    INFO(first.describe());
    REQUIRE(first.exit_code == 75);
    const std::string before = db.checksum("public.big", "id");

    const Env other = key_env(kOtherPassphrase, kOldPassphrase, {{"PREVIOUS_KEY", std::string(kNewPassphrase)}});
    const ProcessResult refused = run_rekey(rotate_cmd(db, {"--column", "big.a_enc"}), other);
    INFO(refused.describe());
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "--restart"));
    CHECK(db.checksum("public.big", "id") == before);
    check_no_secret("stderr", refused.err);

    const ProcessResult restarted =
        run_rekey(rotate_cmd(db, {"--column", "big.a_enc", "--restart", "--old-key-env", "OLD_ENCRYPTION_KEY",
                                  "--old-key-env", "PREVIOUS_KEY", "--batch-size", "1000"}),
                  other);
    INFO(restarted.describe());
    CHECK(restarted.exit_code == 0);
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 2);
    const Env check_env = key_env(kNewPassphrase, kOldPassphrase, {{"OTHER_KEY", std::string(kOtherPassphrase)}});
    REQUIRE_DATA_OK(seeded.check(
        json{{"mode", "final"}, {"final", "OTHER_KEY"}, {"dead", {"OLD_ENCRYPTION_KEY", "NEW_ENCRYPTION_KEY"}}},
        check_env));
  }

  TEST_CASE("key problems are usage errors (exit 2) naming the variable, never showing the key") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("keys");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 20, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain", kClean)}))})));
    const std::string before = db.checksum("public.users", "id");
    const auto args = rotate_cmd(db, {"--column", "users.phone_enc"});
    const std::string weak = "weak-key-Xq7-only-31-characters";  // 31 characters
    REQUIRE(weak.size() == 31);

    SUBCASE("a weak new key") {
      const ProcessResult r = run_rekey(args, key_env(weak));
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "NEW_ENCRYPTION_KEY"));
      CHECK_FALSE(contains(r.err + r.out, weak));
      CHECK_FALSE(contains(r.err + r.out, derive_service_key(weak).urlsafe_b64.substr(0, 43)));
    }
    SUBCASE("a weak new key named by --new-key-env") {
      auto named = args;
      named.insert(named.end(), {"--new-key-env", "MY_NEW_KEY"});
      const ProcessResult r = run_rekey(named, key_env(kNewPassphrase, kOldPassphrase, {{"MY_NEW_KEY", weak}}));
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "MY_NEW_KEY"));
      CHECK_FALSE(contains(r.err + r.out, weak));
    }
    SUBCASE("old key == new key") {
      const ProcessResult r = run_rekey(args, key_env(kNewPassphrase, kNewPassphrase));
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "OLD_ENCRYPTION_KEY"));
      check_no_secret("output", r.err + r.out);
    }
    SUBCASE("no old key") {
      const ProcessResult r = run_rekey(args, key_env(kNewPassphrase, kOldPassphrase, {{"OLD_ENCRYPTION_KEY", {}}}));
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "OLD_ENCRYPTION_KEY"));
    }
    SUBCASE("no new key") {
      const ProcessResult r = run_rekey(args, key_env(kNewPassphrase, kOldPassphrase, {{"NEW_ENCRYPTION_KEY", {}}}));
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "NEW_ENCRYPTION_KEY"));
    }
    CHECK(db.checksum("public.users", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));
  }

  TEST_CASE("bad targets are usage errors (exit 2) naming them") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("targets");
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, phone_enc text, amount_int integer);"
        "CREATE TABLE nopk (id bigint, secret_enc text);"
        "INSERT INTO users VALUES (1, 'gAAAAAnot-really', 5);");
    const std::string before = db.checksum("public.users", "id");
    struct Case {
      std::string column;
      std::vector<std::string> expected;  // substrings of stderr
    };
    const std::vector<Case> cases{
        {"users.ghost_enc", {"ghost_enc", "does not exist"}},
        {"phantom.phone_enc", {"phantom", "does not exist"}},
        {"nopk.secret_enc", {"nopk", "primary key"}},
        {"users.amount_int", {"amount_int", "integer"}},
        {"users.id", {"id", "primary key"}},
        {"nosuchschema.users.phone_enc", {"nosuchschema"}},
        {"a.b.c.d", {"a.b.c.d"}},
        {"users.\"unterminated", {"unterminated"}},
    };
    for (const auto& c : cases) {
      // A good column alongside: the bad one must still stop everything.
      const ProcessResult r =
          run_rekey(rotate_cmd(db, {"--column", "users.phone_enc", "--column", c.column}), key_env());
      INFO("--column " << c.column << ": " << r.describe());
      CHECK(r.exit_code == 2);
      for (const auto& e : c.expected) CHECK(contains(r.err, e));
    }
    CHECK(db.checksum("public.users", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));
  }

  TEST_CASE("--config FILE supplies db, columns and other options") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("config");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 200, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain"),
                                                                  col("email_enc", "text", "wrapped", kClean)}))})));
    const TempDir tmp;
    write_file(tmp.file("rekey.toml"),
               "# rekey rotate options\n"
               "db = \"" +
                   db.conninfo() +
                   "\"\n"
                   "column = [\"users.phone_enc\", \"public.users.email_enc\"]\n"
                   "batch-size = 25\n"
                   "report = \"" +
                   tmp.file("r.json") + "\"\n");
    const ProcessResult r = run_rekey({"rotate", "--config", tmp.file("rekey.toml")}, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    check_report_counts(read_report(tmp.file("r.json")), result.at("counts"));
  }

  TEST_CASE("--config FILE: [[table]] entries give each table's columns; the command line wins over the file") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("config_tables");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 200, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain")})),
                                               table("public", "cards", 100, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("number_enc", "text", "wrapped")}))})));
    const TempDir tmp;
    write_file(tmp.file("rekey.toml"), "pace = 'max'\nbatch-size = 1000000\nreport = '" + tmp.file("ignored.json") +
                                           "'\n\n[[table]]\nname = 'public.users'\ncolumns = ['phone_enc']\n\n"
                                           "[[table]]\nname = 'cards'\ncolumns = ['number_enc']\n");
    const ProcessResult r = run_rekey({"rotate", "--db", db.conninfo(), "--config", tmp.file("rekey.toml"),
                                       "--batch-size", "30", "--report", tmp.file("r.json")},
                                      key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    const json result = seeded.check();
    REQUIRE_DATA_OK(result);
    const json report = read_report(tmp.file("r.json"));
    check_report_counts(report, result.at("counts"));
    CHECK(regular_file_mode(tmp.file("ignored.json")) == -1);  // --report on the command line won
  }

  TEST_CASE("keys never appear in output, report, audit log, metrics or state tables") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("secrets");
    SeededFixture seeded(
        db, spec(json::array(
                {table("public", "users", 300, json::array({pk("id", "text", "text")}),
                       json::array({col("phone_enc", "text", "plain"), col("doc_enc", "bytea", "wrapped")}))})));
    const TempDir tmp;
    std::string everything;
    struct Run {
      std::vector<std::string> global;  // before the subcommand
      std::vector<std::string> local;
    };
    const std::vector<Run> runs{{{"-v"}, {"--dry-run"}},
                                {{"-v"}, {"--max-duration", "1ms"}},
                                {{"-v", "--log-format", "json"}, {}},
                                {{"-v"}, {}}};
    for (const auto& run : runs) {
      std::vector<std::string> args = run.global;
      const auto rotate = rotate_cmd(
          db, {"--column", "users.phone_enc", "--column", "users.doc_enc", "--batch-size", "50", "--report",
               tmp.file("r.json"), "--audit-log", tmp.file("audit.log"), "--metrics-file", tmp.file("metrics.prom")});
      args.insert(args.end(), rotate.begin(), rotate.end());
      args.insert(args.end(), run.local.begin(), run.local.end());
      const ProcessResult r = run_rekey(args, key_env());
      INFO(r.describe());
      CHECK((r.exit_code == 3 || r.exit_code == 75));
      everything += r.out + r.err + read_file(tmp.file("r.json")) + read_file(tmp.file("metrics.prom"));
    }
    everything += read_file(tmp.file("audit.log")) + db.dump_schema("rekey");
    CHECK(contains(everything, "hmac"));  // failures are listed: we searched real output
    CHECK(contains(read_file(tmp.file("audit.log")), "run_start"));
    check_no_secret("output, report, audit log, metrics and state tables", everything);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("a value the application changes while rekey waits for its row is not overwritten") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("concurrent");
    SeededFixture seeded(
        db, spec(json::array({table("public", "users", 40, json::array({pk("id", "bigint", "int")}),
                                    json::array({col("phone_enc", "text", "plain", json{{"old", 1}})}))})));
    const ProcessResult token =
        run_python("tests/pg/fixture.py", {"encrypt", "NEW_ENCRYPTION_KEY", "app", "1700000000"}, key_env());
    REQUIRE(token.exit_code == 0);
    Session app(db.conninfo());
    app.exec("SELECT 1 FROM users WHERE id = 5 FOR UPDATE");
    const TempDir tmp;
    auto p = start_rekey(
        rotate_cmd(db, {"--column", "users.phone_enc", "--lock-timeout", "30s", "--report", tmp.file("r.json")}),
        key_env());
    const std::string waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db.name() +
                                "' AND application_name = 'rekey' AND wait_event_type = 'Lock'";
    REQUIRE(wait_until([&] { return db.count(waiting) > 0 || !p->running(); }, 30s));
    app.exec("UPDATE users SET phone_enc = '" + token.out + "' WHERE id = 5");
    app.commit();
    const ProcessResult r = p->wait(60s);
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(db.value("SELECT phone_enc FROM users WHERE id = 5") == token.out);
    // Row 5 holds what the application wrote (checked above); every other row is checked by Python.
    json skip = json::array({json::array({"public.users", json::array({"5"})})});
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "final"}, {"skip", skip}}));
    const json c = read_report(tmp.file("r.json")).at("tables").at(0).at("columns").at(0);
    CHECK(c.at("rotated") == 39);
    CHECK(c.at("changed_concurrently") == 1);
  }

  TEST_CASE("a row the application keeps locked: the rest is rotated around it, exit 75 after --retry-for") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("retries");
    SeededFixture seeded(
        db, spec(json::array({table("public", "users", 40, json::array({pk("id", "bigint", "int")}),
                                    json::array({col("phone_enc", "text", "plain", json{{"old", 1}})}))})));
    {
      Session app(db.conninfo());
      app.exec("SELECT 1 FROM users WHERE id = 25 FOR UPDATE");
      const ProcessResult r =
          run_rekey(rotate_cmd(db, {"--column", "users.phone_enc", "--batch-size", "10", "--threads", "1",
                                    "--lock-timeout", "100ms", "--retry-for", "1s"}),
                    key_env(), 60s);
      INFO(r.describe());
      CHECK(r.exit_code == 75);
      CHECK(r.seconds < 30);
      CHECK(db.value("SELECT status FROM rekey.runs") == "stopped");
      CHECK(latest_rows_seen(db) == 40);  // no batch waited on the lock: every row was read
      CHECK(db.count("SELECT count(*) FROM rekey.pending") == 1);
      CHECK(db.count("SELECT sum((counts->'phone_enc'->>'rotated')::bigint) FROM rekey.chunks") == 39);
    }
    const ProcessResult again = run_rekey(rotate_cmd(db, {"--column", "users.phone_enc"}), key_env());
    INFO(again.describe());
    CHECK(again.exit_code == 0);
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("--max-failures stops with exit 3; the run is not recorded as finished") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("max_failures");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 400, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain")}))})));
    const TempDir tmp;
    const ProcessResult r = run_rekey(rotate_cmd(db, {"--column", "users.phone_enc", "--batch-size", "10", "--threads",
                                                      "1", "--max-failures", "3", "--report", tmp.file("r.json")}),
                                      key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    const json report = read_report(tmp.file("r.json"));
    CHECK(report.at("stop_reason") == "max_failures");
    CHECK(report.at("tables").at(0).at("completed") == false);
    CHECK(db.value("SELECT status FROM rekey.runs") != "finished");  // it did not finish
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "partial"}}));
  }

  // A char(n) value is read without its blank padding, so the compare-and-swap matches.
  TEST_CASE("a character(n) column is rotated, or refused up front (exit 2), never looped on") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("bpchar");
    SeededFixture seeded(db,
                         spec(json::array({table("public", "padded", 30, json::array({pk("id", "int", "int")}),
                                                 json::array({col("v_enc", "character(400)", "plain", kClean)}))})));
    const std::string before = db.checksum("public.padded", "id");
    const ProcessResult r = run_rekey(rotate_cmd(db, {"--column", "padded.v_enc"}), key_env(), 60s);
    INFO(r.describe());
    if (r.exit_code == 2) {
      CHECK(contains(r.err, "v_enc"));
      CHECK(db.checksum("public.padded", "id") == before);
    } else {
      CHECK(r.exit_code == 0);
      REQUIRE_DATA_OK(seeded.check());
    }
  }

  TEST_CASE("SIGTERM during start-up (key derivation) also exits 75 and writes nothing") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("early_sigterm");
    SeededFixture seeded(db, spec(json::array({table("public", "users", 50, json::array({pk("id", "bigint", "int")}),
                                                     json::array({col("phone_enc", "text", "plain", kClean)}))})));
    const std::string before = db.checksum("public.users", "id");
    // Slow key derivation (a few hundred ms per key), so that the signal surely lands in it.
    auto p = start_rekey(rotate_cmd(db, {"--column", "users.phone_enc", "--kdf-iterations", "2000000"}), key_env());
    const std::string exe = "/proc/" + std::to_string(p->pid()) + "/exe";
    REQUIRE(wait_until(
        [&] {
          char buf[4096];
          const ssize_t n = ::readlink(exe.c_str(), buf, sizeof buf);
          return n > 0 && std::string(buf, static_cast<std::size_t>(n)) == REKEY_BINARY;
        },
        10s, 1ms));
    sleep_for(100ms);
    p->signal(SIGTERM);
    const ProcessResult r = p->wait(30s);
    INFO(r.describe());
    CHECK(r.term_signal == 0);
    CHECK(r.exit_code == 75);
    CHECK(db.checksum("public.users", "id") == before);
  }
}
