// Integration tests of `rekey rotate` on tables of every shape rekey meets,
// against a real PostgreSQL (REKEY_TEST_DB). Every row is judged afterwards by
// Python's cryptography: tests/pg/fixture.py for tables it can build,
// tests/pg/shapes.py for tables a test builds itself.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;

std::vector<std::string> rotate_cmd(const std::string& conninfo, const std::vector<std::string>& more) {
  std::vector<std::string> args{"rotate", "--db", conninfo};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Tokens under the old key in the named columns of tables the test created
// (tests/pg/shapes.py), and the check that every cell ends under the new key.
struct Filled {
  TempDir dir;
  std::string conninfo;
  std::string manifest;
  // `tables`: [{"schema", "table", "columns", "copies"}] (see shapes.py).
  Filled(TestDatabase& db, const json& tables) : conninfo(db.conninfo()), manifest(dir.file("manifest.json")) {
    const std::string spec = dir.file("spec.json");
    write_file(spec, json{{"seed", 1}, {"key", "OLD_ENCRYPTION_KEY"}, {"tables", tables}}.dump(2));
    const ProcessResult r = run_python("tests/pg/shapes.py", {"fill", conninfo, spec, manifest}, key_env());
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
  }
  // Every cell under the new key only, with its plaintext and timestamp.
  json rotated() const { return check(json{{"final", "NEW_ENCRYPTION_KEY"}, {"dead", {"OLD_ENCRYPTION_KEY"}}}); }
  // Every cell still as filled, under the old key.
  json untouched() const { return check(json{{"final", "OLD_ENCRYPTION_KEY"}, {"dead", json::array()}}); }

 private:
  json check(const json& options) const {
    const std::string path = dir.file("options.json");
    write_file(path, options.dump(2));
    const ProcessResult r = run_python("tests/pg/shapes.py", {"check", conninfo, manifest, path}, key_env());
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
  }
};

json table(const std::string& name, const std::vector<std::string>& columns, const json& copies = json::object()) {
  return json{{"schema", "public"}, {"table", name}, {"columns", columns}, {"copies", copies}};
}

// The contents and the row versions of `tables` (name, ORDER BY): changes if
// any row was rewritten, even to the same value.
std::string fingerprint(TestDatabase& db, const std::vector<std::pair<std::string, std::string>>& tables) {
  std::string out;
  for (const auto& [name, order_by] : tables) out += db.checksum(name, order_by) + db.row_versions(name, order_by);
  return out;
}

}  // namespace

TEST_SUITE("db.shapes") {
  TEST_CASE("a primary key with INCLUDE columns: keyed on its key columns only, INCLUDE tokens rotated too") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("include");
    const json mix{{"old", 3}, {"null", 1}};  // NULLs in the INCLUDE column too
    // Seed 16 draws no 2 kB plaintext for label_enc: the index could not carry one.
    const json spec{{"seed", 16},
                    {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
                    {"tables",
                     {{{"schema", "public"},
                       {"table", "labelled"},
                       {"rows", 200},
                       {"pk", {{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}}},
                       {"columns",
                        {{{"name", "secret_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", mix}},
                         {{"name", "label_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", mix}}}},
                       {"include", {"label_enc"}}}}}};
    const TempDir tmp;
    seed_fixture(db.conninfo(), spec, tmp.file("manifest.json"));
    // --discover: discovery must not take the INCLUDE column for a key column either.
    const ProcessResult r = run_rekey(rotate_cmd(db.conninfo(), {"--discover", "--batch-size", "40"}), key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    REQUIRE_DATA_OK(check_fixture(db.conninfo(), tmp.file("manifest.json"), json{{"mode", "final"}}));
    CHECK(db.count("SELECT count(*) FROM rekey.pending") == 0);
  }

  TEST_CASE("a key of an extension's type (citext) compares as that type, whatever the search_path") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("citext");
    // COLLATE "C": compared as plain text, 'B...' sorts before 'a...'; as citext, after.
    db.exec(
        "CREATE EXTENSION citext SCHEMA public;"
        "CREATE TABLE emails (email public.citext COLLATE \"C\" PRIMARY KEY, secret_enc text);"
        "CREATE TABLE tenant_emails (tenant int, email public.citext COLLATE \"C\", secret_enc text, "
        "  PRIMARY KEY (tenant, email));"
        "INSERT INTO emails SELECT CASE WHEN g % 2 = 0 THEN upper(chr(97 + g % 26)) ELSE chr(97 + g % 26) END || g "
        "  FROM generate_series(1, 120) AS g;"
        "INSERT INTO tenant_emails SELECT substr(email, 2)::int % 3, email FROM emails;"
        "ALTER DATABASE " +
        db.name() + " SET search_path = pg_catalog");
    Filled filled(db, json::array({table("emails", {"secret_enc"}), table("tenant_emails", {"secret_enc"})}));
    const auto args = rotate_cmd(
        db.conninfo(), {"--column", "emails.secret_enc", "--column", "tenant_emails.secret_enc", "--batch-size", "7"});
    const ProcessResult r = run_rekey(args, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json result = filled.rotated();
    REQUIRE_DATA_OK(result);
    CHECK(result.at("rows") == 240);

    const std::vector<std::pair<std::string, std::string>> tables{{"public.emails", "email"},
                                                                  {"public.tenant_emails", "tenant, email"}};
    const std::string before = fingerprint(db, tables);
    const ProcessResult again = run_rekey(args, key_env());
    INFO(again.describe());
    CHECK(again.exit_code == 0);
    CHECK(fingerprint(db, tables) == before);
  }
}
