// `rekey rollback --run N` against a real PostgreSQL: after a finished run,
// after a run stopped half-way, with wrong keys, while N still runs, after a
// later run, and killed with kill -9 and resumed. Every row is judged by
// Python's cryptography afterwards (tests/pg/fixture.py, mode "back": every
// token under the old key again, same plaintext and timestamp, same format).
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

json two_tables(int rows, int seed) {
  const json mix{{"old", 6}, {"new", 2}, {"garbage", 1}, {"null", 1}};
  const auto table = [&](const char* name, int n) {
    return json{
        {"schema", "public"},
        {"table", name},
        {"rows", n},
        {"pk", json::array({json{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}})},
        {"columns", json::array({json{{"name", "a_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", mix}},
                                 json{{"name", "b_enc"}, {"type", "text"}, {"format", "wrapped"}, {"mix", mix}}})}};
  };
  return json{{"seed", seed},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
              {"tables", json::array({table("accounts", rows), table("cards", rows / 3)})}};
}

const std::vector<std::string> kTargets{"--column", "accounts.a_enc", "--column", "accounts.b_enc",
                                        "--column", "cards.a_enc",    "--column", "cards.b_enc"};

std::vector<std::string> with_db(const TestDatabase& db, std::vector<std::string> args,
                                 const std::vector<std::string>& more = {}) {
  args.insert(args.begin() + 1, {"--db", db.conninfo()});
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> rotate_args(const TestDatabase& db, const std::vector<std::string>& more = {}) {
  std::vector<std::string> args{"rotate"};
  args.insert(args.end(), kTargets.begin(), kTargets.end());
  return with_db(db, args, more);
}

std::vector<std::string> rollback_args(const TestDatabase& db, long long run,
                                       const std::vector<std::string>& more = {}) {
  return with_db(db, {"rollback", "--run", std::to_string(run)}, more);
}

// Every seeded token under the old key again (garbage untouched and listed),
// but in the rows `skip` names (display name, key texts).
json rolled_back(const SeededFixture& seeded, const json& skip = json::array()) {
  return seeded.check(
      json{{"final", "OLD_ENCRYPTION_KEY"}, {"dead", {"NEW_ENCRYPTION_KEY"}}, {"mode", "back"}, {"skip", skip}});
}

// The gate after a rollback: the old key is the new one now.
ProcessResult gate(const TestDatabase& db) {
  std::vector<std::string> args{"verify", "--db", db.conninfo(), "--require-new"};
  args.insert(args.end(), kTargets.begin(), kTargets.end());
  return run_rekey(args, key_env(kOldPassphrase, kNewPassphrase));
}

long long latest_run_id(TestDatabase& db) { return db.count("SELECT max(id) FROM rekey.runs"); }

// True when the value `select` reads decrypts under the old key to what
// `token` (under the new key) holds, with the same timestamp: Python judges.
bool python_row_back(const TestDatabase& db, const std::string& select, const std::string& token) {
  static constexpr char kCheck[] = R"(import sys
sys.path.insert(0, sys.argv[1])
from fixture import fernet_from_env
import psycopg2
old, new = fernet_from_env("OLD_ENCRYPTION_KEY"), fernet_from_env("NEW_ENCRYPTION_KEY")
cur = psycopg2.connect(sys.argv[2]).cursor()
cur.execute(sys.argv[3])
value, token = cur.fetchone()[0].encode(), sys.argv[4].encode()
same = old.decrypt(value) == new.decrypt(token) and old.extract_timestamp(value) == new.extract_timestamp(token)
print("back" if same else "differs"))";
  const ProcessResult r =
      run({"/usr/bin/python3", "-c", kCheck, source_path("tests/pg"), db.conninfo(), select, token}, key_env());
  INFO(r.describe());
  return r.exit_code == 0 && contains(r.out, "back");
}

}  // namespace

TEST_SUITE("integration.rollback") {
  TEST_CASE("rollback after a finished run: every value back under the old key, linked, and the gate passes") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_finished");
    SeededFixture seeded(db, two_tables(3000, 81));
    const TempDir dir;
    const ProcessResult rotated = run_rekey(rotate_args(db), key_env());
    REQUIRE_MESSAGE(rotated.exit_code == 3, rotated.describe());  // the garbage
    const long long n = latest_run_id(db);
    // The application writes under the new key meanwhile: rolled back too.
    const std::string fresh = python_tokens("NEW_ENCRYPTION_KEY", 1).at(0);
    const std::string written = std::to_string(db.count("SELECT min(id) FROM accounts WHERE a_enc LIKE 'gAAAAA%'"));
    db.exec("UPDATE accounts SET a_enc = '" + fresh + "' WHERE id = " + written);

    const ProcessResult back = run_rekey(rollback_args(db, n, {"--report", dir.file("rollback.json")}), key_env());
    CHECK_MESSAGE(back.exit_code == 3, back.describe());  // the same garbage, still undecryptable
    CHECK(contains(back.err, "including values the application wrote under"));
    const long long r = latest_run_id(db);
    CHECK(r == n + 1);
    CHECK(read_report(dir.file("rollback.json")).at("rollback_of") == n);
    CHECK(db.value("SELECT new_key_fingerprint = (SELECT split_part(old_key_fingerprints, ',', 1) FROM rekey.runs "
                   "WHERE id = " +
                   std::to_string(n) + ") FROM rekey.runs WHERE id = " + std::to_string(r)) == Cell("t"));
    REQUIRE_DATA_OK(rolled_back(seeded, json::array({json::array({"public.accounts", json::array({written})})})));
    CHECK(python_row_back(db, "SELECT a_enc FROM accounts WHERE id = " + written, fresh));
    // The gate after a rollback, keys swapped: only the seeded garbage fails it.
    db.exec(
        "UPDATE accounts SET a_enc = NULL, b_enc = NULL WHERE id IN (SELECT f.primary_key::bigint "
        "FROM rekey.failures f WHERE f.table_name = 'public.accounts')");
    db.exec(
        "UPDATE cards SET a_enc = NULL, b_enc = NULL WHERE id IN (SELECT f.primary_key::bigint "
        "FROM rekey.failures f WHERE f.table_name = 'public.cards')");
    const ProcessResult gated = gate(db);
    CHECK_MESSAGE(gated.exit_code == 0, gated.describe());

    const ProcessResult status = run_rekey({"status", "--db", db.conninfo()}, {});
    CHECK(contains(status.out, "run " + std::to_string(r) + ": finished"));
    CHECK(contains(status.out, "a rollback of run " + std::to_string(n)));
    CHECK(contains(status.out, "rolled back by run " + std::to_string(r) + " (finished)"));

    // N's rotation run again later (the same keys): rolled back along with N.
    REQUIRE(run_rekey(rotate_args(db), key_env()).exit_code == 0);  // the garbage is gone
    const ProcessResult again = run_rekey(rollback_args(db, n), key_env());
    CHECK_MESSAGE(again.exit_code == 0, again.describe());
    const ProcessResult gated_again = gate(db);  // the garbage is gone: every value is under the old key
    CHECK_MESSAGE(gated_again.exit_code == 0, gated_again.describe());
  }

  TEST_CASE("rollback of a run stopped half-way: it is superseded, and every value goes back") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_half");
    SeededFixture seeded(db, two_tables(6000, 82));
    const ProcessResult half = run_rekey(rotate_args(db, {"--pace", "max", "--batch-size", "200", "--max-rate", "4000",
                                                          "--max-duration", "1s", "--workers", "1"}),
                                         key_env());
    REQUIRE_MESSAGE(half.exit_code == 75, half.describe());
    const long long n = latest_run_id(db);
    const long long rotated = db.count("SELECT count(*) FROM rekey.runs WHERE id = " + std::to_string(n));
    REQUIRE(rotated == 1);
    const ProcessResult back = run_rekey(rollback_args(db, n), key_env());
    CHECK_MESSAGE(back.exit_code == 3, back.describe());
    REQUIRE_DATA_OK(rolled_back(seeded));
    CHECK(db.count("SELECT superseded_by FROM rekey.runs WHERE id = " + std::to_string(n)) == n + 1);
    // Rotating again starts anew: the stopped run is never resumed over the rollback.
    const ProcessResult rerun = run_rekey(rotate_args(db), key_env());
    CHECK_MESSAGE(rerun.exit_code == 3, rerun.describe());
    CHECK_FALSE(contains(rerun.err, "resuming run " + std::to_string(n)));
    REQUIRE_DATA_OK(seeded.check(json{{"mode", "back"}}));
  }

  TEST_CASE("rollback refuses wrong keys, an unknown run and a run still running, touching nothing") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_refused");
    SeededFixture seeded(db, two_tables(2000, 83));
    REQUIRE(run_rekey(rotate_args(db), key_env()).exit_code == 3);
    const long long n = latest_run_id(db);
    const std::string before = db.checksum("accounts", "id") + db.checksum("cards", "id");
    const std::string third = "a-third-passphrase-nobody-rotated-with-0123456789";

    const ProcessResult wrong_new = run_rekey(rollback_args(db, n), key_env(third, kOldPassphrase));
    CHECK_MESSAGE(wrong_new.exit_code == 2, wrong_new.describe());
    CHECK(contains(wrong_new.err, "the new key given has fingerprint"));
    const ProcessResult wrong_old = run_rekey(rollback_args(db, n), key_env(kNewPassphrase, third));
    CHECK_MESSAGE(wrong_old.exit_code == 2, wrong_old.describe());
    CHECK(contains(wrong_old.err, "the first old key given has fingerprint"));
    const ProcessResult swapped = run_rekey(rollback_args(db, n), key_env(kOldPassphrase, kNewPassphrase));
    CHECK_MESSAGE(swapped.exit_code == 2, swapped.describe());
    const ProcessResult unknown = run_rekey(rollback_args(db, n + 40), key_env());
    CHECK_MESSAGE(unknown.exit_code == 2, unknown.describe());
    CHECK(contains(unknown.err, "there is no run"));
    CHECK(db.checksum("accounts", "id") + db.checksum("cards", "id") == before);
    CHECK(latest_run_id(db) == n);

    // Run N+1 (old key again, slowly) is running: rolling it back is refused until it stops.
    db.exec("UPDATE accounts SET a_enc = '" + python_tokens("OLD_ENCRYPTION_KEY", 1).at(0) + "' WHERE id <= 500");
    auto slow = start_rekey(rotate_args(db, {"--pace", "max", "--max-rate", "100", "--batch-size", "20"}), key_env());
    REQUIRE(wait_until([&] { return latest_run_id(db) == n + 1 && latest_rows_seen(db) > 0; }, 30s, 20ms));
    const ProcessResult busy = run_rekey(rollback_args(db, n + 1), key_env());
    CHECK_MESSAGE(busy.exit_code == 2, busy.describe());
    CHECK(contains(busy.err, "is still running"));
    slow->signal(SIGTERM);
    CHECK(slow->wait(60s).exit_code == 75);
    const ProcessResult stopped = run_rekey(rollback_args(db, n + 1), key_env());
    CHECK_MESSAGE(stopped.exit_code == 3, stopped.describe());
  }

  TEST_CASE("rollback killed with kill -9 resumes the same run and ends with every value back") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_killed");
    SeededFixture seeded(db, two_tables(30000, 84));
    REQUIRE(run_rekey(rotate_args(db, {"--pace", "max"}), key_env()).exit_code == 3);
    const long long n = latest_run_id(db);
    const std::vector<std::string> args =
        rollback_args(db, n, {"--pace", "max", "--batch-size", "500", "--max-rate", "20000", "--workers", "2"});
    auto killed = start_rekey(args, key_env());
    REQUIRE(wait_until([&] { return latest_run_id(db) == n + 1 && latest_rows_seen(db) >= 3000; }, 60s, 1ms));
    killed->signal(SIGKILL);
    REQUIRE(killed->wait(30s).term_signal == SIGKILL);
    wait_for_rekey_sessions_to_end(db);
    CHECK(latest_rows_seen(db) < 40000);  // killed half-way
    const ProcessResult resumed = run_rekey(args, key_env());
    CHECK_MESSAGE(resumed.exit_code == 3, resumed.describe());
    CHECK(contains(resumed.err, "resuming run " + std::to_string(n + 1)));
    CHECK(latest_run_id(db) == n + 1);
    REQUIRE_DATA_OK(rolled_back(seeded));
    CHECK(db.count("SELECT count(*) FROM rekey.runs WHERE rollback_of = " + std::to_string(n)) == 1);
  }

  TEST_CASE("rollback goes back to the first old key N began with, whatever a resume named; a weak one is refused") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_first_old");
    const std::string third = "a-third-passphrase-the-data-was-partly-under-0123";
    const Env keys = key_env(kNewPassphrase, kOldPassphrase, {{"THIRD_KEY", third}});
    json spec = two_tables(4000, 85);
    spec["keys"]["third"] = "THIRD_KEY";
    for (auto& t : spec["tables"]) {
      for (auto& c : t["columns"]) c["mix"] = json{{"old", 5}, {"third", 2}, {"null", 1}};
    }
    SeededFixture seeded(db, spec, keys);
    // N begins with OLD only (the third key's values fail), is stopped, and is resumed with THIRD first.
    const ProcessResult half = run_rekey(
        rotate_args(db, {"--pace", "max", "--batch-size", "200", "--max-rate", "4000", "--max-duration", "1s"}), keys);
    REQUIRE_MESSAGE(half.exit_code == 75, half.describe());
    const long long n = latest_run_id(db);
    const ProcessResult resumed =
        run_rekey(rotate_args(db, {"--old-key-env", "THIRD_KEY", "--old-key-env", "OLD_ENCRYPTION_KEY"}), keys);
    REQUIRE_MESSAGE(latest_run_id(db) == n, resumed.describe());
    const ProcessResult by_resume =
        run_rekey(rollback_args(db, n, {"--old-key-env", "THIRD_KEY", "--old-key-env", "OLD_ENCRYPTION_KEY"}), keys);
    CHECK_MESSAGE(by_resume.exit_code == 2, by_resume.describe());
    CHECK(contains(by_resume.err, "the first old key given has fingerprint"));
    // The first old key N began with, plus the third to read what was under it: all of it goes to OLD.
    const ProcessResult back =
        run_rekey(rollback_args(db, n, {"--old-key-env", "OLD_ENCRYPTION_KEY", "--old-key-env", "THIRD_KEY"}), keys);
    CHECK_MESSAGE(back.exit_code == 0, back.describe());
    REQUIRE_DATA_OK(seeded.check(json{{"final", "OLD_ENCRYPTION_KEY"},
                                      {"dead", {"NEW_ENCRYPTION_KEY", "THIRD_KEY"}},
                                      {"mode", "back"},
                                      {"state_schema", nullptr}},
                                 keys));

    // A run whose old key is weak: rolling back to it is refused, as rotating to it would be.
    TestDatabase weak_db("rollback_weak");
    SeededFixture weak(weak_db, two_tables(300, 86), key_env(kNewPassphrase, "short"));
    REQUIRE(run_rekey(rotate_args(weak_db), key_env(kNewPassphrase, "short")).exit_code == 3);
    const ProcessResult weak_back =
        run_rekey(rollback_args(weak_db, latest_run_id(weak_db)), key_env(kNewPassphrase, "short"));
    CHECK_MESSAGE(weak_back.exit_code == 2, weak_back.describe());
    CHECK(contains(weak_back.err, "too short"));
  }

  TEST_CASE("rollbacks in a row; a later run that still stands blocks; --join only into a rollback begun") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_chain");
    SeededFixture seeded(db, two_tables(1500, 87));
    const std::string third = "a-third-passphrase-for-a-later-rotation-0123456";
    REQUIRE(run_rekey(rotate_args(db), key_env()).exit_code == 3);  // run 1: OLD -> NEW
    const long long first = latest_run_id(db);
    const Env to_third = key_env(third, kNewPassphrase, {{"FIRST_OLD", std::string(kOldPassphrase)}});
    REQUIRE(run_rekey(rotate_args(db, {"--old-key-env", "OLD_ENCRYPTION_KEY"}), to_third).exit_code == 3);  // run 2
    const long long second = latest_run_id(db);
    const ProcessResult blocked = run_rekey(rollback_args(db, first), key_env());
    CHECK_MESSAGE(blocked.exit_code == 2, blocked.describe());
    CHECK(contains(blocked.err, "roll back run " + std::to_string(second) + " first"));
    const ProcessResult join_first = run_rekey(rollback_args(db, second, {"--join"}), to_third);
    CHECK_MESSAGE(join_first.exit_code == 2, join_first.describe());
    CHECK(contains(join_first.err, "no rollback of run " + std::to_string(second) + " has begun"));
    REQUIRE(run_rekey(rollback_args(db, second), to_third).exit_code == 3);  // run 3: back to NEW
    // A dry run of a rollback reads and re-encrypts in memory, and changes nothing.
    const std::string before_dry = db.checksum("accounts", "id");
    const ProcessResult dry = run_rekey(rollback_args(db, first, {"--dry-run"}), key_env());
    CHECK_MESSAGE(dry.exit_code == 3, dry.describe());
    CHECK(contains(dry.out, "DRY RUN"));
    CHECK(db.checksum("accounts", "id") == before_dry);
    // A rollback of that rollback (run 4) puts the values under the third key again: run 1 is blocked by it,
    // until run 4 is rolled back in turn (run 5).
    const Env back_to_third = key_env(kNewPassphrase, third);
    const ProcessResult fourth = run_rekey(rollback_args(db, second + 1), back_to_third);  // run 4, of run 3
    REQUIRE_MESSAGE(fourth.exit_code == 3, fourth.describe());
    const ProcessResult blocked_again = run_rekey(rollback_args(db, first), key_env());
    CHECK_MESSAGE(blocked_again.exit_code == 2, blocked_again.describe());
    CHECK(contains(blocked_again.err, "roll back run " + std::to_string(second + 2) + " first"));
    REQUIRE(run_rekey(rollback_args(db, second + 2), to_third).exit_code == 3);  // run 5, of run 4: under NEW again
    // Run 2 is undone by its rollback, run 4 by its own: run 1 can be rolled back now, all the way to OLD.
    const ProcessResult back = run_rekey(rollback_args(db, first), key_env());
    CHECK_MESSAGE(back.exit_code == 3, back.describe());
    REQUIRE_DATA_OK(rolled_back(seeded));
    const ProcessResult status = run_rekey({"status", "--db", db.conninfo(), "--run-id", std::to_string(second)}, {});
    CHECK(contains(status.out, "rolled back by run " + std::to_string(second + 1) +
                                   " (finished, itself rolled back by run " + std::to_string(second + 2) + ")"));
    const ProcessResult of_first = run_rekey({"status", "--db", db.conninfo(), "--run-id", std::to_string(first)}, {});
    CHECK(contains(of_first.out, "rolled back by run "));
  }

  TEST_CASE("rollback of a --discover run covers N's columns only, and reads the config file N ran with") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rollback_scope");
    SeededFixture seeded(db, two_tables(1200, 88));
    db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text)");
    db.exec("INSERT INTO notes SELECT g, 'plain text, never a token ' || g FROM generate_series(1, 50) g");
    const TempDir dir;
    write_file(dir.file("rotate.toml"), "discover = true\nexclude = ['public.notes']\npace = 'max'\n");
    REQUIRE(run_rekey({"rotate", "--db", db.conninfo(), "--config", dir.file("rotate.toml")}, key_env()).exit_code ==
            3);
    const long long n = latest_run_id(db);
    // Since N: a table the application now writes under the new key, which N never covered.
    const std::string later = python_tokens("NEW_ENCRYPTION_KEY", 1).at(0);
    db.exec("CREATE TABLE later (id int PRIMARY KEY, v text)");
    db.exec("INSERT INTO later VALUES (1, '" + later + "')");
    db.exec("UPDATE rekey.runs SET scope = NULL WHERE id = " + std::to_string(n));  // as an older rekey left it
    const ProcessResult back = run_rekey(
        rollback_args(db, n, {"--config", dir.file("rotate.toml"), "--report", dir.file("r.json")}), key_env());
    CHECK_MESSAGE(back.exit_code == 3, back.describe());
    CHECK(contains(back.err, "discover ignored"));
    // Discovered columns: what holds no token (the seeded garbage that is not one) is left alone, unlisted.
    REQUIRE_DATA_OK(seeded.check(json{{"final", "OLD_ENCRYPTION_KEY"},
                                      {"dead", {"NEW_ENCRYPTION_KEY"}},
                                      {"mode", "back"},
                                      {"state_schema", nullptr}}));
    CHECK(db.value("SELECT v FROM later WHERE id = 1") == Cell(later));  // not N's: untouched
    CHECK(db.count("SELECT count(*) FROM notes WHERE body LIKE 'plain text, never a token %'") == 50);
    CHECK_FALSE(contains(read_report(dir.file("r.json")).at("tables").dump(), "later"));
  }
}
