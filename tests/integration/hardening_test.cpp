// Names are hostile input: no name rekey is given, or finds in the database,
// can run SQL or inject an option. Against the real PostgreSQL (REKEY_TEST_DB).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/config_file.h"
#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;

}  // namespace

TEST_SUITE("integration.hardening") {
  TEST_CASE("a state schema or column name with a newline cannot escape its quotes: exit 2, nothing run") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("ddl_injection");
    db.exec("CREATE TABLE victim (id int PRIMARY KEY, v text); INSERT INTO victim VALUES (1, 'x')");
    const std::string hostile = "x\nDROP TABLE victim;--";
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"rotate", "--db", db.conninfo(), "--column", "victim.v", "--state-schema", hostile},
             {"verify", "--db", db.conninfo(), "--discover", "--state-schema", hostile},
             {"status", "--db", db.conninfo(), "--state-schema", hostile},
             {"rotate", "--db", db.conninfo(), "--column", "\"vic\ntim\".v"}}) {
      const auto r = run_rekey(args, key_env());
      CAPTURE(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "control characters"));
    }
    TempDir dir;
    write_file(dir.file("rotate.toml"), "column = ['victim.v']\nstate-schema = \"x\\nDROP TABLE victim;--\"\n");
    const auto from_config =
        run_rekey({"rotate", "--db", db.conninfo(), "--config", dir.file("rotate.toml")}, key_env());
    CHECK(from_config.exit_code == 2);
    CHECK(db.count("SELECT count(*) FROM victim") == 1);
    CHECK(db.count("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'x%'") == 0);
  }

  TEST_CASE("discover --emit-config: a hostile column name cannot inject a setting, in a comment or a list") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emit_injection");
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 2);
    const std::string name = "a\nnew-key-env = PATH\n#";
    db.exec("CREATE TABLE no_pk (\"" + name + "\" text); INSERT INTO no_pk VALUES ('" + t[0] + "')");
    db.exec("CREATE TABLE keyed (id int PRIMARY KEY, \"" + name + "\" text); INSERT INTO keyed VALUES (1, '" + t[1] +
            "')");
    TempDir dir;
    const std::string config = dir.file("rotate.toml");
    const auto found = run_rekey({"discover", "--db", db.conninfo(), "--emit-config", config}, key_env());
    REQUIRE_MESSAGE(found.exit_code == 0, found.describe());
    const auto entries = rekey::parse_config_text(read_file(config), config);
    std::vector<std::string> keys;
    for (const auto& e : entries) keys.push_back(e.key);
    CHECK(keys == std::vector<std::string>{"db", "column"});
    REQUIRE(entries.back().values.size() == 1);
    CHECK(contains(entries.back().values[0], "new-key-env = PATH"));  // the name itself, quoted, read back whole
  }

  TEST_CASE("a name from the database cannot forge a line of output or of the log") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("forged_line");
    const std::string token = python_tokens("OLD_ENCRYPTION_KEY", 1).at(0);
    db.exec("CREATE TABLE \"x\nrekey: error: forged\" (v text); INSERT INTO \"x\nrekey: error: forged\" VALUES ('" +
            token + "')");
    // One rotate can rewrite, whose keys are hostile too, one of them failing
    // (a token under a key rekey does not have): the summary, the progress
    // and status show them all.
    const std::string other = python_tokens("OTHER", 1, "plain", "", {{"OTHER", kOtherPassphrase}}).at(0);
    db.exec("CREATE TABLE \"y\x1b[2J\nrekey: error: forged\" (id text PRIMARY KEY, v text)");
    db.exec("INSERT INTO \"y\x1b[2J\nrekey: error: forged\" VALUES ('a\x1b[2J\nrekey: error: forged', '" + token +
            "'), ('b\x1b[2J\nrekey: error: forged', '" + other + "')");
    for (const auto& args : std::vector<std::vector<std::string>>{{"discover", "--db", db.conninfo()},
                                                                  {"verify", "--db", db.conninfo(), "--discover"},
                                                                  {"rotate", "--db", db.conninfo(), "--discover"},
                                                                  {"status", "--db", db.conninfo()}}) {
      const auto out = run_rekey(args, key_env());
      CAPTURE(out.describe());
      CHECK(out.exit_code != 1);
      CHECK(contains(out.out + out.err, "\\x0arekey: error: forged"));
      CHECK_FALSE(contains(out.out + out.err, "\nrekey: error: forged"));
      CHECK_FALSE(contains(out.out + out.err, "\x1b"));
    }
  }

  TEST_CASE("rekey keygen > new.env, then --new-key-file new.env: the key is the ENCRYPTION_KEY line") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("env_key_file");
    TempDir dir;
    const auto generated = run_rekey({"keygen"}, {});
    REQUIRE(generated.exit_code == 0);
    const std::string env_file = dir.file("new.env");
    write_file(env_file, generated.out);
    REQUIRE(::chmod(env_file.c_str(), 0600) == 0);  // as the README says: a key file readable by others is refused
    const std::string line = generated.out.substr(generated.out.find("ENCRYPTION_KEY=") + 15);
    const std::string passphrase = line.substr(0, line.find('\n'));
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 3);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    for (int i = 0; i < 3; ++i) db.exec("INSERT INTO t VALUES (" + std::to_string(i) + ", '" + t[i] + "')");
    const auto rotated = run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v", "--new-key-file", env_file},
                                   key_env(kNewPassphrase, kOldPassphrase, {{"NEW_ENCRYPTION_KEY", std::nullopt}}));
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());
    const auto gate = run_rekey({"verify", "--db", db.conninfo(), "--discover", "--require-new"},
                                key_env(passphrase, kOldPassphrase));
    CHECK_MESSAGE(gate.exit_code == 0, gate.describe());
    for (const auto& form : secret_forms(passphrase)) CHECK_FALSE(contains(rotated.out + rotated.err, form));
    // A .env file without the variable asked for is refused, naming the option and never the text.
    const auto refused = run_rekey(
        {"rotate", "--db", db.conninfo(), "--column", "t.v", "--new-key-file", env_file, "--key-name", "NOPE"},
        key_env());
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "--key-name"));
  }

  TEST_CASE("a key given where a name or an option belongs is never echoed; a key read from the environment is wiped") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("key_hygiene");
    const std::string key = "a pasted passphrase: correct horse battery staple 0003";
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"rotate", "--db", db.conninfo(), "--column", "t.v", "--new-key=" + key},
             {"rotate", "--db", db.conninfo(), "--column", "t.v", "--new-key-env", key},
             {"verify", "--db", db.conninfo(), "--discover", "--old-key-env", key}}) {
      const auto r = run_rekey(args, key_env());
      CAPTURE(r.describe());
      CHECK(r.exit_code == 2);
      CHECK_FALSE(contains(r.out + r.err, "correct horse battery staple 0003"));
    }
    // While rotate runs (paused by its pause file), its environment no longer holds the keys it read.
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    db.exec("INSERT INTO t VALUES (1, '" + python_tokens("OLD_ENCRYPTION_KEY", 1).at(0) + "')");
    TempDir dir;
    const std::string pause = dir.file("pause");
    write_file(pause, "");
    auto runner = start_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v", "--pause-file", pause}, key_env());
    REQUIRE(wait_until([&] { return contains(runner->stderr_so_far(), "pause"); }, std::chrono::seconds(30),
                       std::chrono::milliseconds(50)));
    const std::string environ = read_file("/proc/" + std::to_string(runner->pid()) + "/environ");
    CHECK_FALSE(environ.empty());
    CHECK_FALSE(contains(environ, kNewPassphrase));
    CHECK_FALSE(contains(environ, kOldPassphrase));
    runner->signal(SIGTERM);
    CHECK(runner->wait().exit_code == 75);
  }

  TEST_CASE("a state schema made by an older rekey gains the new columns and tables; a current one is left unlocked") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("state_upgrade");
    // The DDL as the first version had it: no superseded_by, not_found_at, rollback_of or scope.
    std::string ddl = read_file(source_path("sql/state_schema.sql"));
    std::string old_ddl;
    for (std::size_t from = 0; from < ddl.size();) {
      std::size_t end = ddl.find('\n', from);
      if (end == std::string::npos) end = ddl.size();
      const std::string line = ddl.substr(from, end - from);
      from = end + 1;
      if (contains(line, "superseded_by") || contains(line, "not_found_at") || contains(line, "rollback_of") ||
          contains(line, "  scope ") || contains(line, "first_old_key")) {
        continue;
      }
      old_ddl += line + "\n";
    }
    const std::size_t comma = old_ddl.find("exit_code            integer,");
    REQUIRE(comma != std::string::npos);
    old_ddl.replace(comma, 29, "exit_code            integer");
    for (std::size_t at = old_ddl.find("__SCHEMA__"); at != std::string::npos; at = old_ddl.find("__SCHEMA__", at)) {
      old_ddl.replace(at, 10, "rekey");
    }
    db.exec("CREATE SCHEMA rekey");  // the first version's DDL made it; the current file leaves that to rekey
    db.exec(old_ddl);
    db.exec("DROP TABLE rekey.pace");  // nor the pace of --pace auto
    CHECK(db.count("SELECT count(*) FROM pg_attribute WHERE attrelid = 'rekey.runs'::regclass AND "
                   "attname = 'superseded_by'") == 0);
    // status reads an old schema as it is (it is read-only: it upgrades nothing).
    db.exec(
        "INSERT INTO rekey.runs (targets, new_key_fingerprint, old_key_fingerprints, status, command, runner) "
        "VALUES ('public.t.v\n', 'aaaaaaaa', 'bbbbbbbb', 'finished', 'rekey rotate', 'old@host 1')");
    const auto old_status = run_rekey({"status", "--db", db.conninfo()}, {});
    CHECK_MESSAGE(old_status.exit_code == 0, old_status.describe());
    CHECK(contains(old_status.out, "run 1: finished"));
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    const auto r = run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v"}, key_env());
    CHECK_MESSAGE(r.exit_code == 0, r.describe());
    CHECK(db.count("SELECT count(*) FROM pg_attribute WHERE attrelid = 'rekey.runs'::regclass AND "
                   "attname = 'superseded_by'") == 1);
    CHECK(db.count("SELECT count(*) FROM pg_attribute WHERE attrelid = 'rekey.pending'::regclass AND "
                   "attname = 'not_found_at'") == 1);
    CHECK(db.count("SELECT count(*) FROM pg_attribute WHERE attrelid = 'rekey.runs'::regclass AND "
                   "attname IN ('rollback_of', 'scope', 'first_old_key')") == 3);
    CHECK(db.count("SELECT count(*) FROM rekey.pace") == 1);  // created, and written by the health probe
    CHECK_FALSE(contains(r.err, "health probe failed"));
  }
}
