// Integration tests of `rekey rotate` on tables of every shape rekey meets,
// against a real PostgreSQL (REKEY_TEST_DB). Every row is judged afterwards by
// Python's cryptography: tests/pg/fixture.py for tables it can build,
// tests/pg/shapes.py for tables a test builds itself.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "db/connection.h"
#include "tests/support/it_support.h"

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

// Runs the same rotation again: exit 0, and no row of `tables` rewritten.
void check_rerun_rewrites_nothing(TestDatabase& db, const std::vector<std::string>& args, const Env& env,
                                  const std::vector<std::pair<std::string, std::string>>& tables) {
  const std::string before = fingerprint(db, tables);
  const ProcessResult again = run_rekey(args, env);
  INFO(again.describe());
  CHECK(again.exit_code == 0);
  CHECK(fingerprint(db, tables) == before);
}

// A login role for one test (trust authentication, as scripts/lib/pg.sh sets
// up), allowed to create rekey's state schema; dropped at scope end with all
// it owns in `db`.
class TestRole {
 public:
  TestRole(TestDatabase& db, const std::string& suffix, const std::string& options)
      : db_(db), name_(db.name() + "_" + suffix) {
    db_.exec("CREATE ROLE " + name_ + " LOGIN " + options + "; GRANT CREATE ON DATABASE " + db_.name() + " TO " +
             name_);
  }
  ~TestRole() {
    try {
      db_.exec("DROP OWNED BY " + name_ + "; DROP ROLE " + name_);
    } catch (...) {
      // Best effort: a leftover role in a throwaway cluster is harmless.
    }
  }
  TestRole(const TestRole&) = delete;
  TestRole& operator=(const TestRole&) = delete;

  const std::string& name() const { return name_; }
  std::string conninfo() const { return db_.conninfo() + " user=" + name_; }

 private:
  TestDatabase& db_;
  std::string name_;
};

// The tables of a rotate report, in the order rekey took them.
std::string report_tables(const json& report) {
  std::string out;
  for (const auto& t : report.at("tables")) out += (out.empty() ? "" : " ") + t.at("table").get<std::string>();
  return out;
}

// A float8 key whose values need all 17 digits, a timestamptz key with
// microseconds: keys whose text only casts back to the same value under
// rekey's pinned session settings. 150 rows each, filled by shapes.py.
void create_float_and_time_keys(TestDatabase& db) {
  db.exec(
      "CREATE TABLE floats (id float8 PRIMARY KEY, secret_enc text);"
      "INSERT INTO floats SELECT g / 7.0::float8 FROM generate_series(-70, 79) AS g;"
      "CREATE TABLE times (at timestamptz PRIMARY KEY, secret_enc text);"
      "INSERT INTO times SELECT timestamptz '2024-10-26 22:00:00.000001+00' + g * interval '7 minutes 0.000007 "
      "seconds' "
      "  FROM generate_series(1, 150) AS g;");
}

// Rotates floats and times with `env`, checks every row with Python, then
// that a second run rewrites nothing.
void rotate_float_and_time_keys(TestDatabase& db, const Env& env) {
  Filled filled(db, json::array({table("floats", {"secret_enc"}), table("times", {"secret_enc"})}));
  const auto args = rotate_cmd(db.conninfo(),
                               {"--column", "floats.secret_enc", "--column", "times.secret_enc", "--batch-size", "16"});
  const ProcessResult r = run_rekey(args, env);
  INFO(r.describe());
  CHECK(r.exit_code == 0);
  CHECK_FALSE(contains(r.err, "planted"));
  const json result = filled.rotated();
  REQUIRE_DATA_OK(result);
  CHECK(result.at("rows") == 300);
  CHECK(db.count("SELECT count(*) FROM rekey.pending") == 0);
  check_rerun_rewrites_nothing(db, args, env, {{"public.floats", "id"}, {"public.times", "at"}});
}

}  // namespace

TEST_SUITE("integration.shapes") {
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
    check_rerun_rewrites_nothing(db, args, key_env(),
                                 {{"public.emails", "email"}, {"public.tenant_emails", "tenant, email"}});
  }

  TEST_CASE("float8 and timestamptz keys under PGOPTIONS that change how keys print: pinned settings win") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("pgoptions");
    create_float_and_time_keys(db);
    // Each of these alone makes some key's text cast back to another value
    // (15 float digits; 'IST' read back as Israel time), or another function run.
    const std::string options =
        "-c extra_float_digits=0 -c DateStyle=SQL,DMY -c TimeZone=Asia/Kolkata -c IntervalStyle=sql_standard "
        "-c search_path=public";
    rotate_float_and_time_keys(db, key_env(kNewPassphrase, kOldPassphrase, {{"PGOPTIONS", options}}));
  }

  TEST_CASE("float8 and timestamptz keys under ALTER DATABASE / ALTER ROLE settings, functions planted in public") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("alter_database");
    create_float_and_time_keys(db);
    // With public searched first, these would run instead of the catalog's own.
    db.exec(
        "CREATE FUNCTION public.hashtext(text) RETURNS integer LANGUAGE plpgsql AS "
        "  $$ BEGIN RAISE EXCEPTION 'planted hashtext ran as %', current_user; END $$;"
        "CREATE FUNCTION public.format_type(oid, integer) RETURNS text LANGUAGE plpgsql AS "
        "  $$ BEGIN RAISE EXCEPTION 'planted format_type ran as %', current_user; END $$;"
        "ALTER DATABASE " +
        db.name() +
        " SET DateStyle = 'German, DMY';"
        "ALTER DATABASE " +
        db.name() +
        " SET TimeZone = 'Asia/Kolkata';"
        "ALTER DATABASE " +
        db.name() +
        " SET search_path = public, pg_catalog;"
        "ALTER ROLE CURRENT_USER IN DATABASE " +
        db.name() + " SET extra_float_digits = 0");
    rotate_float_and_time_keys(db, key_env());
  }

  TEST_CASE("a connection keeps its pinned settings when libpqxx reconnects it after a lost backend") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("reconnect");
    db.exec("ALTER DATABASE " + db.name() + " SET search_path = public; ALTER DATABASE " + db.name() +
            " SET TimeZone = 'Asia/Kolkata'");
    const auto conn = rekey::db::connect(db.conninfo());
    const auto settings = [&] {
      pqxx::nontransaction tx(*conn);
      return tx.exec1("SELECT current_setting('search_path') || ' / ' || current_setting('TimeZone')")[0]
          .as<std::string>();
    };
    const std::string pinned = "pg_catalog, pg_temp / UTC";
    CHECK(settings() == pinned);
    db.exec("SELECT pg_terminate_backend(" + std::to_string(conn->backendpid()) + ")");
    // libpqxx reports the loss (on the next use, and once more while it drops
    // the dead handle), then connects anew and sets the variables again.
    std::string after;
    for (int attempt = 0; attempt < 3 && after.empty(); ++attempt) {
      try {
        after = settings();
      } catch (const pqxx::broken_connection& e) {
        MESSAGE("attempt " << attempt << ": " << std::string(e.what()));
      }
    }
    CHECK(after == pinned);
    CHECK(conn->is_open());
  }

  TEST_CASE("inheritance: a parent stands for itself and every descendant, each keyed and written on its own") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("inheritance");
    // The same ids in the parent, its child and its grandchild.
    db.exec(
        "CREATE TABLE parent (id int PRIMARY KEY, secret_enc text);"
        "CREATE TABLE child (PRIMARY KEY (id), note text) INHERITS (parent);"
        "CREATE TABLE grandchild (PRIMARY KEY (id)) INHERITS (child);"
        "INSERT INTO parent SELECT g FROM generate_series(1, 90) AS g;"
        "INSERT INTO child SELECT g FROM generate_series(1, 90) AS g;"
        "INSERT INTO grandchild SELECT g FROM generate_series(31, 120) AS g;");
    Filled filled(db, json::array({table("parent", {"secret_enc"})}));
    const TempDir tmp;
    // The child named too: still one target per relation.
    const auto args = rotate_cmd(db.conninfo(), {"--column", "parent.secret_enc", "--column", "child.secret_enc",
                                                 "--batch-size", "16", "--report", tmp.file("r.json")});
    const ProcessResult r = run_rekey(args, key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json result = filled.rotated();
    REQUIRE_DATA_OK(result);
    CHECK(result.at("rows_by_relation") ==
          json{{"public.parent", 90}, {"public.child", 90}, {"public.grandchild", 90}});
    const json report = read_report(tmp.file("r.json"));
    CHECK(report_tables(report) == "public.parent public.child public.grandchild");
    for (const auto& t : report.at("tables")) CHECK(t.at("columns").at(0).at("rotated") == 90);
    const std::vector<std::pair<std::string, std::string>> tables{{"public.parent", "tableoid, id"}};
    check_rerun_rewrites_nothing(db, args, key_env(), tables);

    SUBCASE("a descendant without a primary key is refused (exit 2), naming it") {
      db.exec("CREATE TABLE orphan () INHERITS (child); INSERT INTO orphan (id) VALUES (1)");
      const std::string with_orphan = fingerprint(db, tables);
      const ProcessResult refused = run_rekey(args, key_env());
      INFO(refused.describe());
      CHECK(refused.exit_code == 2);
      CHECK(contains(refused.err, "public.orphan (inherits from public.parent) has no primary key"));
      CHECK(fingerprint(db, tables) == with_orphan);
    }
  }

  TEST_CASE("a partitioned table stands for its leaf partitions, each rotated") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("partitions");
    db.exec(
        "CREATE TABLE events (id bigint PRIMARY KEY, secret_enc text) PARTITION BY RANGE (id);"
        "CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (MINVALUE) TO (100);"
        "CREATE TABLE events_mid PARTITION OF events FOR VALUES FROM (100) TO (200);"
        "CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (200) TO (MAXVALUE);"
        "INSERT INTO events SELECT g FROM generate_series(1, 290) AS g;");
    Filled filled(db, json::array({table("events", {"secret_enc"})}));
    const TempDir tmp;
    const ProcessResult r = run_rekey(rotate_cmd(db.conninfo(), {"--column", "events.secret_enc", "--batch-size", "32",
                                                                 "--report", tmp.file("r.json")}),
                                      key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json result = filled.rotated();
    REQUIRE_DATA_OK(result);
    CHECK(result.at("rows_by_relation") ==
          json{{"public.events_low", 99}, {"public.events_mid", 100}, {"public.events_high", 91}});
    CHECK(report_tables(read_report(tmp.file("r.json"))) == "public.events_high public.events_low public.events_mid");
  }

  TEST_CASE("row-level security that applies to rekey's role is refused (exit 2); a BYPASSRLS role rotates") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("rls");
    const TestRole app(db, "app", "");  // the application: owns the table, FORCE makes its policies bind it too
    const TestRole bypass(db, "bypass", "BYPASSRLS");
    db.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, tenant text NOT NULL, secret_enc text);"
        "INSERT INTO accounts SELECT g, 'tenant' || g % 3 FROM generate_series(1, 60) AS g;"
        "ALTER TABLE accounts OWNER TO " +
        app.name() +
        ";"
        "ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;"
        "ALTER TABLE accounts FORCE ROW LEVEL SECURITY;"
        "CREATE POLICY tenant_rows ON accounts USING (tenant = current_setting('app.tenant', true));"
        "GRANT SELECT, UPDATE ON accounts TO " +
        bypass.name());
    Filled filled(db, json::array({table("accounts", {"secret_enc"})}));
    const auto args = [](const TestRole& role) {
      return rotate_cmd(role.conninfo(), {"--column", "accounts.secret_enc", "--batch-size", "16"});
    };
    const std::string before = fingerprint(db, {{"public.accounts", "id"}});

    const ProcessResult refused = run_rekey(args(app), key_env());
    INFO(refused.describe());
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "row-level security applies to this role on table public.accounts"));
    CHECK(contains(refused.err, "NO FORCE ROW LEVEL SECURITY"));
    CHECK(contains(refused.err, "BYPASSRLS"));
    CHECK(fingerprint(db, {{"public.accounts", "id"}}) == before);
    CHECK_FALSE(db.schema_exists("rekey"));
    REQUIRE_DATA_OK(filled.untouched());

    const ProcessResult r = run_rekey(args(bypass), key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const json result = filled.rotated();
    REQUIRE_DATA_OK(result);
    CHECK(result.at("rows") == 60);
  }

  TEST_CASE("a generated column is never a target: naming it is refused (exit 2); rotating its source recomputes it") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("generated");
    db.exec(
        "CREATE TABLE profiles (id int PRIMARY KEY, phone_enc text, "
        "  phone_copy text GENERATED ALWAYS AS (phone_enc) STORED);"
        "INSERT INTO profiles (id) SELECT g FROM generate_series(1, 80) AS g;");
    Filled filled(db, json::array({table("profiles", {"phone_enc"}, {{"phone_copy", "phone_enc"}})}));
    const std::string before = fingerprint(db, {{"public.profiles", "id"}});

    const ProcessResult refused = run_rekey(
        rotate_cmd(db.conninfo(), {"--column", "profiles.phone_enc", "--column", "profiles.phone_copy"}), key_env());
    INFO(refused.describe());
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "table public.profiles, column phone_copy is a generated column"));
    CHECK(contains(refused.err, "rotate those"));
    CHECK(fingerprint(db, {{"public.profiles", "id"}}) == before);
    REQUIRE_DATA_OK(filled.untouched());

    // Discovery finds both, and offers only the source.
    const ProcessResult found = run_rekey({"discover", "--db", db.conninfo(), "--format", "json"}, key_env());
    INFO(found.describe());
    REQUIRE(found.exit_code == 0);
    std::string rotatable;
    const json columns = json::parse(found.out).at("columns");
    for (const auto& c : columns) {
      rotatable += c.at("column").get<std::string>() + (c.at("rotatable").get<bool>() ? " yes " : " no ");
      if (c.at("column") == "phone_copy") CHECK(contains(c.at("note").get<std::string>(), "generated column"));
    }
    CHECK(rotatable == "phone_enc yes phone_copy no ");

    const ProcessResult r =
        run_rekey(rotate_cmd(db.conninfo(), {"--column", "profiles.phone_enc", "--batch-size", "16"}), key_env());
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    REQUIRE_DATA_OK(filled.rotated());  // phone_copy included: PostgreSQL recomputed it from the new token
  }

  TEST_CASE("a token in a primary-key column is refused (exit 2), whichever relation's key holds it; nothing changes") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("token_key");
    // keyed: the token is a key column. parent: not in its key, but in its child's.
    db.exec(
        "CREATE TABLE keyed (tenant int, token_enc text, PRIMARY KEY (tenant, token_enc));"
        "INSERT INTO keyed SELECT g % 4, 'placeholder ' || g FROM generate_series(1, 40) AS g;"
        "CREATE TABLE parent (id int PRIMARY KEY, token_enc text);"
        "CREATE TABLE child (PRIMARY KEY (id, token_enc)) INHERITS (parent);"
        "INSERT INTO parent SELECT g FROM generate_series(1, 40) AS g;"
        "INSERT INTO child SELECT g, 'placeholder ' || g FROM generate_series(1, 40) AS g;");
    Filled filled(db, json::array({table("keyed", {"token_enc"}), table("parent", {"token_enc"})}));
    const std::vector<std::pair<std::string, std::string>> tables{{"public.keyed", "tenant, token_enc"},
                                                                  {"public.parent", "tableoid, id"}};
    const std::string before = fingerprint(db, tables);
    struct Case {
      std::string column;
      std::string expected;
    };
    for (const Case& c : {Case{"keyed.token_enc", "table public.keyed, column token_enc is part of the primary key"},
                          Case{"parent.token_enc",
                               "table public.child (inherits from public.parent), column "
                               "token_enc is part of the primary key"}}) {
      const ProcessResult r = run_rekey(rotate_cmd(db.conninfo(), {"--column", c.column}), key_env());
      INFO("--column " << c.column << ": " << r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, c.expected));
    }
    CHECK(fingerprint(db, tables) == before);
    CHECK_FALSE(db.schema_exists("rekey"));
    REQUIRE_DATA_OK(filled.untouched());
  }
}

TEST_SUITE("integration.shapes") {
  TEST_CASE("a view, a materialized view or a foreign table named with --column: exit 2 naming what it is") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("not_a_table");
    db.exec(
        "CREATE TABLE base (id int PRIMARY KEY, secret_enc text);"
        "INSERT INTO base SELECT g FROM generate_series(1, 20) AS g;");
    Filled filled(db, json::array({table("base", {"secret_enc"})}));
    db.exec(
        "CREATE VIEW v AS SELECT id, secret_enc FROM base;"
        "CREATE MATERIALIZED VIEW mv AS SELECT id, secret_enc FROM base;"
        "CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;"
        "CREATE FOREIGN TABLE ft (id int, secret_enc text) SERVER files OPTIONS (filename '/dev/null');");
    const std::string before = fingerprint(db, {{"public.base", "id"}});
    struct Case {
      std::string column;
      std::string message;
    };
    for (const Case& c :
         {Case{"v.secret_enc", "public.v is a view: rotate its base table's column instead"},
          Case{"mv.secret_enc",
               "public.mv is a materialized view: rotate its source table's column, "
               "then refresh it"},
          Case{"ft.secret_enc", "public.ft is a foreign table: rotate it on the server that stores it"}}) {
      const ProcessResult r = run_rekey(rotate_cmd(db.conninfo(), {"--column", c.column}), key_env());
      INFO(c.column << ": " << r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, c.message));
      CHECK_FALSE(contains(r.err, "does not exist"));
    }
    CHECK_FALSE(db.schema_exists("rekey"));
    CHECK(fingerprint(db, {{"public.base", "id"}}) == before);
    REQUIRE_DATA_OK(filled.untouched());
  }
}

TEST_SUITE("integration.shapes") {
  TEST_CASE("UPDATE triggers fire once per row rewritten; --disable-triggers skips them, and is a superuser's alone") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("triggers");
    db.exec(
        "CREATE TABLE calls (table_name text);"
        "CREATE FUNCTION public.count_call() RETURNS trigger LANGUAGE plpgsql AS "
        "  $$BEGIN INSERT INTO public.calls VALUES (TG_TABLE_NAME); RETURN NEW; END$$;"
        "CREATE TABLE fired (id int PRIMARY KEY, secret_enc text);"
        "CREATE TABLE skipped (id int PRIMARY KEY, secret_enc text);"
        "INSERT INTO fired SELECT g FROM generate_series(1, 70) AS g;"
        "INSERT INTO skipped SELECT g FROM generate_series(1, 70) AS g;");
    Filled filled(db, json::array({table("fired", {"secret_enc"}), table("skipped", {"secret_enc"})}));
    db.exec(
        "CREATE TRIGGER counted BEFORE UPDATE ON fired FOR EACH ROW EXECUTE FUNCTION public.count_call();"
        "CREATE TRIGGER counted BEFORE UPDATE ON skipped FOR EACH ROW EXECUTE FUNCTION public.count_call();");
    const std::vector<std::pair<std::string, std::string>> tables{{"public.fired", "id"}, {"public.skipped", "id"}};
    const std::string before = fingerprint(db, tables);

    TestRole plain(db, "plain", "");
    db.exec("GRANT SELECT, UPDATE ON fired, skipped TO " + plain.name());
    const ProcessResult refused = run_rekey(
        {"rotate", "--db", plain.conninfo(), "--column", "skipped.secret_enc", "--disable-triggers"}, key_env());
    INFO(refused.describe());
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "--disable-triggers needs a superuser"));
    CHECK_FALSE(db.schema_exists("rekey"));
    CHECK(fingerprint(db, tables) == before);

    TempDir dir;
    const ProcessResult fire = run_rekey(
        rotate_cmd(db.conninfo(), {"--column", "fired.secret_enc", "--batch-size", "16", "--report", dir.file("f")}),
        key_env());
    INFO(fire.describe());
    CHECK(fire.exit_code == 0);
    CHECK_FALSE(contains(fire.err, "--disable-triggers"));
    CHECK(read_report(dir.file("f")).at("tables").at(0).at("columns").at(0).at("rotated") == 70);
    CHECK(db.count("SELECT count(*) FROM calls WHERE table_name = 'fired'") == 70);

    const ProcessResult skip =
        run_rekey(rotate_cmd(db.conninfo(), {"--column", "skipped.secret_enc", "--batch-size", "16",
                                             "--disable-triggers", "--report", dir.file("s")}),
                  key_env());
    INFO(skip.describe());
    CHECK(skip.exit_code == 0);
    CHECK(contains(skip.err, "fire no trigger and no rule"));
    CHECK(contains(skip.err, "foreign-key checks"));
    CHECK(read_report(dir.file("s")).at("tables").at(0).at("columns").at(0).at("rotated") == 70);
    CHECK(db.count("SELECT count(*) FROM calls WHERE table_name = 'skipped'") == 0);

    db.exec("UPDATE skipped SET id = id WHERE id = 1");  // the trigger itself still works
    CHECK(db.count("SELECT count(*) FROM calls WHERE table_name = 'skipped'") == 1);
    const json result = filled.rotated();
    REQUIRE_DATA_OK(result);
    CHECK(result.at("rows") == 140);
  }
}
