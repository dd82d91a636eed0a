// Files rekey writes cannot be redirected, key files must be private, and the
// database password shows nowhere: the real binary against the real
// PostgreSQL (REKEY_TEST_DB). Unit tests: tests/unit/common/atomic_file_test,
// tests/unit/cli/key_source_test, tests/unit/cli/db_options_test.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/db_options.h"
#include "cli/key_source.h"
#include "common/atomic_file.h"
#include "common/errors.h"
#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;

// A table t (id, v) with `n` values under the old key; returns its checksum.
std::string seed_old_tokens(TestDatabase& db, int n) {
  const auto tokens = python_tokens("OLD_ENCRYPTION_KEY", n);
  db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
  for (int i = 0; i < n; ++i) db.exec("INSERT INTO t VALUES (" + std::to_string(i) + ", '" + tokens[i] + "')");
  return db.checksum("t", "id");
}

}  // namespace

TEST_SUITE("integration.files") {
  TEST_CASE("report, metrics and emitted config: links planted at their paths and temporaries redirect nothing") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("planted_links");
    seed_old_tokens(db, 3);
    db.exec("INSERT INTO t VALUES (99, 'gAAAAABnot-a-token-any-key-opens')");  // a failure: the report lists its key
    TempDir dir;
    const std::string victim = dir.file("victim");
    write_file(victim, "the victim's content\n");
    const std::vector<std::string> outputs{dir.file("rotate.json"), dir.file("metrics.prom"), dir.file("verify.json"),
                                           dir.file("rotate.toml")};
    for (const auto& path : outputs) {
      plant_link(victim, path);
      plant_link(victim, path + ".tmp");
    }
    const auto rotated = run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v", "--report", outputs[0],
                                    "--metrics-file", outputs[1], "--audit-log", dir.file("audit.log")},
                                   key_env());
    CHECK_MESSAGE(rotated.exit_code == 3, rotated.describe());
    const auto verified =
        run_rekey({"verify", "--db", db.conninfo(), "--column", "t.v", "--report", outputs[2]}, key_env());
    CHECK_MESSAGE(verified.exit_code == 0, verified.describe());
    const auto discovered = run_rekey({"discover", "--db", db.conninfo(), "--emit-config", outputs[3]}, key_env());
    CHECK_MESSAGE(discovered.exit_code == 0, discovered.describe());

    CHECK(read_file(victim) == "the victim's content\n");
    for (const auto& path : outputs) {
      CAPTURE(path);
      CHECK(regular_file_mode(path) == 0600);
    }
    CHECK(regular_file_mode(dir.file("audit.log")) == 0600);
    const json report = read_report(outputs[0]);
    REQUIRE(report.at("failures").size() == 1);
    CHECK(report["failures"][0].at("primary_key") == "99");
    CHECK(contains(read_file(outputs[1]), "rekey_run_info"));
    CHECK(read_report(outputs[2]).is_object());
    CHECK(contains(read_file(outputs[3]), "column = ["));
  }

  TEST_CASE("an audit log path holding a link is refused (exit 2) before anything is rotated; the victim untouched") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("audit_link");
    const std::string before = seed_old_tokens(db, 3);
    TempDir dir;
    const std::string victim = dir.file("victim");
    write_file(victim, "the victim's content\n");
    plant_link(victim, dir.file("audit.log"));
    const auto r = run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v", "--audit-log", dir.file("audit.log")},
                             key_env());
    CAPTURE(r.describe());
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, dir.file("audit.log")));
    CHECK(contains(r.err, "symbolic link"));
    CHECK(read_file(victim) == "the victim's content\n");
    CHECK(db.checksum("t", "id") == before);
  }

  TEST_CASE("a report that cannot be written is refused (exit 2) before anything is rotated") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("report_unwritable");
    const std::string before = seed_old_tokens(db, 3);
    TempDir dir;
    const std::string report = dir.file("no-such-dir") + "/report.json";
    const auto r = run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v", "--report", report}, key_env());
    CAPTURE(r.describe());
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "--report: cannot write " + report));
    CHECK(db.checksum("t", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));
  }

  TEST_CASE("a readable key file is refused (exit 2) before anything is touched; --allow-readable-key-file warns") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("readable_key");
    const std::string before = seed_old_tokens(db, 3);
    TempDir dir;
    const std::string path = key_file(dir, "new.key", std::string(kNewPassphrase) + "\n", 0644);
    const Env env = key_env(kNewPassphrase, kOldPassphrase, {{"NEW_ENCRYPTION_KEY", std::nullopt}});
    const std::vector<std::string> rotate{"rotate", "--db", db.conninfo(), "--column", "t.v", "--new-key-file", path};
    for (const auto& args : {rotate, std::vector<std::string>{"check-key", "--key-file", path}}) {
      const auto refused = run_rekey(args, env);
      CAPTURE(refused.describe());
      CHECK(refused.exit_code == 2);
      CHECK(contains(refused.err, path + " is accessible by group or others (mode 0644): chmod 600 " + path));
    }
    CHECK(db.checksum("t", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));

    std::vector<std::string> allowed_args = rotate;
    allowed_args.push_back("--allow-readable-key-file");
    const auto allowed = run_rekey(allowed_args, env);
    CAPTURE(allowed.describe());
    CHECK(allowed.exit_code == 0);
    CHECK(contains(allowed.err, "warning: key file " + path + " is accessible by group or others"));
    const auto gate = run_rekey({"verify", "--db", db.conninfo(), "--column", "t.v", "--require-new"}, key_env());
    CHECK_MESSAGE(gate.exit_code == 0, gate.describe());
    for (const auto& form : secret_forms(kNewPassphrase)) CHECK_FALSE(contains(allowed.out + allowed.err, form));
  }

  TEST_CASE("the database password shows in no output, file, log or state row; --db with one warns") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("password_hidden");
    seed_old_tokens(db, 3);
    db.exec("INSERT INTO t VALUES (99, 'gAAAAABnot-a-token-any-key-opens')");
    const std::string password = "Pw-never-shown-5f3e9a";
    const std::string with_password = db.conninfo() + " password=" + password;
    TempDir dir;
    const auto files = [&dir](const std::string& command) {
      return std::vector<std::string>{"--report", dir.file(command + ".json")};
    };
    std::vector<ProcessResult> results;
    const auto run_with = [&](std::vector<std::string> args, const Env& env) {
      results.push_back(run_rekey(args, env));
      return results.back();
    };
    // --db on the command line: warned about, never shown.
    std::vector<std::string> rotate{"rotate",
                                    "--db",
                                    with_password,
                                    "--column",
                                    "t.v",
                                    "--log-format",
                                    "json",
                                    "--verbose",
                                    "--metrics-file",
                                    dir.file("metrics.prom"),
                                    "--audit-log",
                                    dir.file("audit.log")};
    for (const auto& a : files("rotate")) rotate.push_back(a);
    const auto rotated = run_with(rotate, key_env());
    CHECK_MESSAGE(rotated.exit_code == 3, rotated.describe());
    CHECK(contains(rotated.err, "other local users can read"));
    // The environment form: no warning.
    const Env url_env = key_env(kNewPassphrase, kOldPassphrase, {{"DATABASE_URL", with_password}});
    std::vector<std::string> verify{"verify", "--column", "t.v"};
    for (const auto& a : files("verify")) verify.push_back(a);
    const auto verified = run_with(verify, url_env);
    CHECK_MESSAGE(verified.exit_code == 0, verified.describe());
    CHECK_FALSE(contains(verified.err, "other local users can read"));
    CHECK(run_with({"discover", "--emit-config", dir.file("rotate.toml")}, url_env).exit_code == 0);
    CHECK(run_with({"status"}, url_env).exit_code == 0);
    CHECK(run_with({"status", "--format", "json"}, url_env).exit_code == 0);
    CHECK(run_with({"rotate", "--db", with_password, "--config", dir.file("rotate.toml")}, key_env()).exit_code == 3);
    // libpq quotes a malformed URI whole in its error: the error is shown, the password is not.
    const auto malformed = run_with({"discover", "--db", "postgresql://app:" + password + "@[::1/db"}, key_env());
    CHECK(malformed.exit_code != 0);
    CHECK(contains(malformed.err, "IPv6"));

    for (const auto& r : results) {
      CAPTURE(r.describe());
      CHECK_FALSE(contains(r.out + r.err, password));
    }
    for (const auto& name : names_in(dir.path())) {
      CAPTURE(name);
      CHECK_FALSE(contains(read_file(dir.file(name)), password));
    }
    CHECK(names_in(dir.path()).size() == 5);
    CHECK(db.count("SELECT count(*) FROM rekey.runs WHERE command LIKE '%password=***%'") >= 1);
    CHECK_FALSE(contains(db.dump_schema("rekey"), password));
  }

  TEST_CASE("--db-env NAME reads the connection string from NAME; a value given as the name is never echoed") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("db_env");
    seed_old_tokens(db, 1);
    const std::string uri_like = db.conninfo() + " password=Pw-pasted-as-a-name-77";
    const auto found = run_rekey({"discover", "--db-env", "PAYMENTS_DB"},
                                 key_env(kNewPassphrase, kOldPassphrase, {{"PAYMENTS_DB", db.conninfo()}}));
    CHECK_MESSAGE(found.exit_code == 0, found.describe());
    CHECK(contains(found.out, "public.t.v"));
    const auto pasted = run_rekey({"discover", "--db-env", uri_like}, key_env());
    CAPTURE(pasted.describe());
    CHECK(pasted.exit_code == 2);
    CHECK(contains(pasted.err, "--db-env"));
    CHECK_FALSE(contains(pasted.out + pasted.err, "Pw-pasted-as-a-name-77"));
    CHECK_FALSE(contains(pasted.out + pasted.err, db.name()));
    const auto unset = run_rekey({"discover", "--db-env", "NOT_SET_ANYWHERE"}, key_env());
    CHECK(unset.exit_code == 2);
    CHECK(contains(unset.err, "NOT_SET_ANYWHERE is not set"));
  }
}
