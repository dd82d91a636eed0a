// The gate tells the truth: `verify --discover --require-new` exits 0 only
// when no value anywhere holds a token an old key opens, `rotate --discover`
// sees at least what the gate sees, and no value is ever destroyed. Every
// case runs against the real PostgreSQL (REKEY_TEST_DB) and is judged by
// Python's cryptography.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

constexpr const char* kRandomDb = "tests/pg/random_db.py";
constexpr const char* kJudge = "tests/pg/gate_judge.py";

Env keys_with_other() { return key_env(kNewPassphrase, kOldPassphrase, {{"OTHER_ENCRYPTION_KEY", kOtherPassphrase}}); }

ProcessResult run(const TestDatabase& db, std::vector<std::string> args, const Env& env = key_env()) {
  args.insert(args.begin() + 1, {"--db", db.conninfo()});
  return run_rekey(args, env);
}

// Python's census of a whole database: every value holding a token span,
// and under which key each span opens (see tests/pg/gate_judge.py).
json judge(const TestDatabase& db) {
  const auto r = run_python(kJudge, {"census", db.conninfo()}, keys_with_other());
  REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
  return json::parse(r.out);
}

// `value` with each token span replaced by "<T>": what must survive a rotation byte for byte.
std::string outside_tokens(const std::string& value) {
  static const std::regex span("(^|[^A-Za-z0-9_-])(gAAAAA|Z0FBQUFB)[A-Za-z0-9_-]*=*");
  return std::regex_replace(value, span, "$1<T>");
}

}  // namespace

TEST_SUITE("integration.gate") {
  TEST_CASE("several tokens in one value, JSON around tokens, a token inside text: rotated in place") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("multi_token");
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 12);
    const auto w = python_tokens("OLD_ENCRYPTION_KEY", 2, "wrapped");
    const std::vector<std::string> values = {
        t[0] + "," + t[1],
        "\"" + t[2] + "\"",
        "[\"" + t[3] + "\", \"" + t[4] + "\"]",
        "{\"acct\": \"" + t[5] + "\", \"n\": 7}",
        "acct: " + t[6] + " (primary)",
        "  " + t[7] + "\n",
        w[0] + ";" + t[8],
        t[9],
        w[1],
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text, b bytea)");
    for (std::size_t i = 0; i < values.size(); ++i) {
      db.exec("INSERT INTO t VALUES (" + std::to_string(i) + ", '" + values[i] + "', convert_to('" + values[i] +
              "', 'UTF8'))");
    }
    const auto rotated = run(db, {"rotate", "--column", "t.v", "--column", "t.b"});
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());
    const Rows rows = db.query("SELECT id, v, convert_from(b, 'UTF8') FROM t ORDER BY id");
    REQUIRE(rows.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      CAPTURE(values[i]);
      CHECK(*rows[i][1] != values[i]);
      CHECK(outside_tokens(*rows[i][1]) == outside_tokens(values[i]));
      CHECK(rows[i][1]->size() == values[i].size());
      CHECK(*rows[i][2] != *rows[i][1]);  // each column re-encrypted on its own (fresh IVs)
      CHECK(outside_tokens(*rows[i][2]) == outside_tokens(values[i]));
    }
    const json census = judge(db);
    CHECK(census["old"] == 0);
    CHECK(census["new"] == 2 * 12);  // 12 tokens per column, each under the new key
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 0);
  }

  TEST_CASE("a value with one token that no key opens is left whole, even beside tokens that rotate") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("multi_token_bad");
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 2);
    const std::string broken = t[1].substr(0, t[1].size() - 4);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    db.exec("INSERT INTO t VALUES (1, '" + t[0] + "," + broken + "')");
    const auto rotated = run(db, {"rotate", "--column", "t.v"});
    CHECK(rotated.exit_code == 3);
    CHECK(db.value("SELECT v FROM t") == Cell(t[0] + "," + broken));
    CHECK(db.count("SELECT count(*) FROM rekey.failures") == 1);
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 3);
  }

  TEST_CASE("random databases: nothing lost, and the gate and rotate's exit code tell the truth") {
    REKEY_IT_REQUIRE_DB();
    const int seeds = std::getenv("REKEY_RANDOM_DB_SEEDS") ? std::atoi(std::getenv("REKEY_RANDOM_DB_SEEDS")) : 6;
    int changed = 0;  // a seed may draw nothing rotatable (tables without a primary key only); all of them may not
    for (int seed = 1; seed <= seeds; ++seed) {
      CAPTURE(seed);
      TestDatabase db("random" + std::to_string(seed));
      TempDir dir;
      const std::string manifest = dir.file("manifest.json");
      const auto seeded =
          run_python(kRandomDb, {"seed", db.conninfo(), std::to_string(seed), manifest}, keys_with_other());
      REQUIRE_MESSAGE(seeded.exit_code == 0, seeded.describe());
      const auto rotated = run(db, {"rotate", "--discover", "--report", dir.file("rotate.json")});
      INFO("rotate: " << rotated.describe());
      const auto verified = run(db, {"verify", "--discover", "--require-new"});
      INFO("verify: " << verified.describe());
      const auto checked = run_python(
          kRandomDb,
          {"check", db.conninfo(), manifest, std::to_string(rotated.exit_code), std::to_string(verified.exit_code)},
          keys_with_other());
      REQUIRE_MESSAGE(checked.exit_code == 0, checked.describe());
      const json verdict = json::parse(checked.out);
      INFO("judge: " << verdict.dump(1));
      CHECK(verdict["ok"].get<bool>());
      changed += verdict["stats"]["changed"].get<int>();
      // A second rotation has nothing left to do, and changes nothing.
      const std::string before = db.dump_schema("public") + db.dump_schema("Tenant Data");
      const auto again = run(db, {"rotate", "--discover"});
      CHECK(again.exit_code == rotated.exit_code);
      CHECK(db.dump_schema("public") + db.dump_schema("Tenant Data") == before);
    }
    CHECK(changed > 0);  // the test rotated something
  }

  TEST_CASE("a column whose first 1,000 values are '' and later ones tokens is found, rotated and verified") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("late_tokens");
    const auto old_tokens = python_tokens("OLD_ENCRYPTION_KEY", 300);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, '' FROM generate_series(1, 1000) g");
    for (std::size_t i = 0; i < old_tokens.size(); ++i) {
      db.exec("INSERT INTO t VALUES (" + std::to_string(1001 + i) + ", '" + old_tokens[i] + "')");
    }
    const auto found = run(db, {"discover", "--format", "json"});
    REQUIRE_MESSAGE(found.exit_code == 0, found.describe());
    const json columns = json::parse(found.out)["columns"];
    REQUIRE(columns.size() == 1);
    CHECK(columns[0]["values_with_tokens"] == 300);

    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 3);
    const auto rotated = run(db, {"rotate", "--discover", "--report", "/dev/stdout"});
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());  // '' holds no token: left alone, not a failure
    CHECK(db.count("SELECT count(*) FROM t WHERE v = ''") == 1000);
    const json census = judge(db);
    CHECK(census["old"] == 0);
    CHECK(census["new"] == 300);
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 0);
  }

  TEST_CASE("what rotate cannot rewrite fails the gate and rotate's exit code, names why, and is left untouched") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("uncovered");
    const auto old_tokens = python_tokens("OLD_ENCRYPTION_KEY", 20);
    db.exec("CREATE TABLE ok (id int PRIMARY KEY, v text)");
    db.exec("INSERT INTO ok VALUES (1, '" + old_tokens[0] + "'), (2, '" + old_tokens[1] + "')");
    db.exec("CREATE TABLE no_pk (v text); INSERT INTO no_pk VALUES ('" + old_tokens[2] + "'), ('" + old_tokens[3] +
            "')");
    db.exec("CREATE TABLE keyed (k text PRIMARY KEY); INSERT INTO keyed VALUES ('" + old_tokens[4] + "')");
    db.exec("CREATE TABLE docs (id int PRIMARY KEY, j jsonb, a text[])");
    db.exec("INSERT INTO docs VALUES (1, '{\"acct\": \"" + old_tokens[5] + "\"}', ARRAY['" + old_tokens[6] + "'])");
    db.exec("CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM ok");
    const std::string untouched = db.dump_schema("public");

    const auto gate = run(db, {"verify", "--discover", "--require-new", "--format", "json"});
    CHECK(gate.exit_code == 3);
    const json report = json::parse(gate.out);
    std::map<std::string, std::string> why;
    for (const auto& c : report["columns"]) {
      if (c.contains("not_rotatable")) why[c["display"]] = c["not_rotatable"];
    }
    CHECK(contains(why["public.no_pk.v"], "no primary key"));
    CHECK(contains(why["public.keyed.k"], "primary key"));
    CHECK(contains(why["public.docs.j"], "jsonb"));
    CHECK(contains(why["public.docs.a"], "text[]"));
    CHECK(contains(why["public.mv.v"], "REFRESH"));

    const auto rotated = run(db, {"rotate", "--discover", "--report", "/dev/stdout"});
    CHECK_MESSAGE(rotated.exit_code == 3, rotated.describe());
    for (const char* name : {"no_pk.v", "keyed.k", "docs.j", "docs.a", "mv.v"}) {
      CHECK_MESSAGE(contains(rotated.out, std::string("NOT ROTATED public.") + name), name);
    }
    // ok.v was rotated; the rest is exactly as it was.
    CHECK(db.dump_schema("public") != untouched);
    const json census = judge(db);
    CHECK(census["by_column"]["public.ok.v"]["new"] == 2);
    CHECK(census["by_column"]["public.no_pk.v"]["old"] == 2);

    // Refreshing the view, and excluding what the operator handles by other means, passes the gate.
    db.exec("REFRESH MATERIALIZED VIEW mv");
    const auto excluded = run(db, {"verify", "--discover", "--require-new", "--exclude", "public.no_pk", "--exclude",
                                   "public.keyed.k", "--exclude", "public.docs"});
    CHECK_MESSAGE(excluded.exit_code == 0, excluded.describe());
    CHECK(contains(excluded.out, "excluded: public.no_pk"));
    CHECK(run(db, {"verify", "--discover", "--exclude", "no_pk"}).exit_code == 2);  // SCHEMA.TABLE expected
  }

  TEST_CASE("new-key tokens where rotate cannot reach pass the gate; a stored generated copy follows its source") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("generated");
    const auto old_tokens = python_tokens("OLD_ENCRYPTION_KEY", 10);
    const auto new_tokens = python_tokens("NEW_ENCRYPTION_KEY", 2);
    db.exec("CREATE TABLE no_pk (v text); INSERT INTO no_pk VALUES ('" + new_tokens[0] + "')");
    db.exec("CREATE TABLE g (id int PRIMARY KEY, v text, copy text GENERATED ALWAYS AS (v) STORED)");
    for (int i = 0; i < 10; ++i)
      db.exec("INSERT INTO g (id, v) VALUES (" + std::to_string(i) + ", '" + old_tokens[i] + "')");
    const auto found = run(db, {"discover", "--format", "json"});
    REQUIRE_MESSAGE(found.exit_code == 0, found.describe());
    bool generated_reported = false;
    const json columns = json::parse(found.out)["columns"];
    for (const auto& c : columns) {
      if (c["column"] != "copy") continue;
      generated_reported = !c["rotatable"].get<bool>() && contains(c["note"].get<std::string>(), "generated");
    }
    CHECK_MESSAGE(generated_reported, found.out);
    const auto rotated = run(db, {"rotate", "--discover"});
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());
    const json census = judge(db);
    CHECK(census["old"] == 0);
    CHECK(census["by_column"]["public.g.copy"]["new"] == 10);
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 0);
  }

  TEST_CASE("objects the role cannot read, or sees only in part, fail the gate with the reason; rotate refuses RLS") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("unreadable");
    const auto new_tokens = python_tokens("NEW_ENCRYPTION_KEY", 4);
    db.exec("CREATE TABLE open (id int PRIMARY KEY, v text); INSERT INTO open VALUES (1, '" + new_tokens[0] + "')");
    db.exec("CREATE TABLE secret (id int PRIMARY KEY, v text); INSERT INTO secret VALUES (1, '" + new_tokens[1] + "')");
    db.exec("CREATE TABLE tenants (id int PRIMARY KEY, tenant text, v text)");
    db.exec("INSERT INTO tenants VALUES (1, 'a', '" + new_tokens[2] + "'), (2, 'b', '" + new_tokens[3] + "')");
    db.exec("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY; ALTER TABLE tenants FORCE ROW LEVEL SECURITY");
    db.exec("CREATE POLICY tenant_a ON tenants USING (tenant = 'a')");
    const std::string role = "gate_app_" + db.name().substr(db.name().size() - 6);
    db.exec("DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role + " LOGIN");
    db.exec("GRANT SELECT, UPDATE ON open, tenants TO " + role);
    const std::string as_app = db.conninfo() + " user=" + role;
    const auto gate = run_rekey({"verify", "--db", as_app, "--discover", "--require-new"}, key_env());
    CHECK(gate.exit_code == 3);
    CHECK(contains(gate.out, "NOT CHECKED public.secret.v"));
    CHECK(contains(gate.out, "NOT CHECKED public.tenants: row-level security"));
    const auto rotate = run_rekey({"rotate", "--db", as_app, "--discover"}, key_env());
    CHECK(rotate.exit_code == 2);
    CHECK(contains(rotate.err, "row-level security"));
    // As the owner (a superuser here) everything can be read, and it is all new.
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 0);
    db.exec("DROP OWNED BY " + role + "; DROP ROLE " + role);
  }

  TEST_CASE("a value the application copies behind the checkpoint is rotated by the final sweep") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("sweep");
    const auto old_tokens = python_tokens("OLD_ENCRYPTION_KEY", 400);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    std::string values;
    for (int i = 0; i < 400; ++i) values += (i ? ", (" : "(") + std::to_string(i) + ", '" + old_tokens[i] + "')";
    db.exec("INSERT INTO t VALUES " + values);
    TempDir dir;
    auto runner = start_rekey({"rotate", "--db", db.conninfo(), "--column", "t.v", "--batch-size", "10", "--max-rate",
                               "200", "--report", dir.file("report.json")},
                              key_env());
    // Once the checkpoint has passed row 100, the application copies an old-key value from ahead of it.
    REQUIRE(wait_until(
        [&] {
          return db.schema_exists("rekey") &&
                 db.count("SELECT count(*) FROM rekey.chunks WHERE (last_key->>0)::int > 100") > 0;
        },
        30s, 20ms));
    db.exec("UPDATE t SET v = (SELECT v FROM t WHERE id = 399) WHERE id = 5");
    db.exec("INSERT INTO t VALUES (-1, '" + old_tokens[398] + "')");
    const auto done = runner->wait(120s);
    CHECK_MESSAGE(done.exit_code == 0, done.describe());
    const json report = read_report(dir.file("report.json"));
    CHECK(report["tables"][0]["swept"].get<int>() >= 2);
    const json census = judge(db);
    CHECK(census["old"] == 0);
    CHECK(census["new"] == 401);
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 0);
  }

  TEST_CASE("one new key per column: an unfinished run over an overlapping column set refuses another key") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("overlap");
    const auto old_tokens = python_tokens("OLD_ENCRYPTION_KEY", 50);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, a text, b text)");
    for (int i = 0; i < 50; ++i) {
      db.exec("INSERT INTO t VALUES (" + std::to_string(i) + ", '" + old_tokens[i] + "', '" + old_tokens[i] + "')");
    }
    CHECK(run(db, {"rotate", "--column", "t.a", "--max-duration", "1ms"}).exit_code == 75);
    const Env other_key = key_env(kOtherPassphrase, kOldPassphrase);
    const auto refused = run(db, {"rotate", "--column", "t.a", "--column", "t.b"}, other_key);
    CHECK(refused.exit_code == 2);
    CHECK(contains(refused.err, "run 1"));
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
    const auto restarted = run(db, {"rotate", "--column", "t.a", "--column", "t.b", "--restart"}, other_key);
    CHECK_MESSAGE(restarted.exit_code == 0, restarted.describe());
    CHECK(db.value("SELECT superseded_by FROM rekey.runs WHERE id = 1") == Cell("2"));
    CHECK(db.value("SELECT status FROM rekey.runs WHERE id = 1") == Cell("stopped"));
    const json census = judge(db);
    CHECK(census["other"] == 100);  // both columns, under the one new key of the run that finished
  }

  TEST_CASE("every type that can hold a token is searched: nested domains, arrays of domains, composites, ranges") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("types");
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 8);
    db.exec(
        "CREATE DOMAIN d1 AS text; CREATE DOMAIN d2 AS d1; CREATE TYPE pair AS (label text, token text);"
        "CREATE TYPE textrange AS RANGE (subtype = text)");
    db.exec("CREATE TABLE nested (id int PRIMARY KEY, v d2); INSERT INTO nested VALUES (1, '" + t[0] + "')");
    db.exec("CREATE TABLE arr (id int PRIMARY KEY, v d1[]); INSERT INTO arr VALUES (1, ARRAY['" + t[1] + "']::d1[])");
    db.exec("CREATE TABLE comp (id int PRIMARY KEY, v pair); INSERT INTO comp VALUES (1, ROW('x', '" + t[2] + "'))");
    db.exec("CREATE TABLE rng (id int PRIMARY KEY, v textrange); INSERT INTO rng VALUES (1, textrange('" + t[3] +
            "', '" + t[3] + "z'))");
    db.exec("CREATE TABLE blobs (id int PRIMARY KEY, v bytea[]); INSERT INTO blobs VALUES (1, ARRAY[convert_to('" +
            t[4] + "', 'UTF8')])");
    const auto gate = run(db, {"verify", "--discover", "--require-new", "--format", "json"});
    CHECK(gate.exit_code == 3);
    const json report = json::parse(gate.out);
    std::map<std::string, int> old;
    for (const auto& c : report["columns"]) old[c["display"]] = c["total"].get<int>() - c["new_key"].get<int>();
    for (const char* column : {"public.nested.v", "public.arr.v", "public.comp.v", "public.rng.v"}) {
      CHECK_MESSAGE(old[column] == 1, column);
    }
    CHECK(contains(report["unchecked"].dump(), "public.blobs.v"));
    const auto rotated = run(db, {"rotate", "--discover"});
    CHECK(rotated.exit_code == 3);
    CHECK(contains(rotated.out, "NOT ROTATED public.comp.v"));
  }

  TEST_CASE("the state schema hides nothing but rekey's own tables; a gate that found no token fails") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("state_scope");
    CHECK(run(db, {"verify", "--discover", "--require-new"}).exit_code == 3);  // nothing at all: the wrong --db?
    CHECK(run(db, {"verify", "--discover", "--require-new", "--allow-no-tokens"}).exit_code == 0);
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 2);
    db.exec(
        "CREATE SCHEMA rekey; CREATE TABLE rekey.customer_backup (id int PRIMARY KEY, v text);"
        "INSERT INTO rekey.customer_backup VALUES (1, '" +
        t[0] + "')");
    db.exec("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, '" + t[1] + "')");
    const auto gate = run(db, {"verify", "--discover", "--require-new"});
    CHECK(gate.exit_code == 3);
    CHECK(contains(gate.out, "rekey.customer_backup.v"));
    const auto other_state = run(db, {"verify", "--discover", "--require-new", "--state-schema", "public"});
    CHECK(other_state.exit_code == 3);
    CHECK(contains(other_state.out, "public.t.v"));
    // rekey's own state tables are left out, and listed.
    CHECK(run(db, {"rotate", "--discover", "--state-schema", "rekey_state"}).exit_code == 0);
    const auto after = run(db, {"verify", "--discover", "--require-new", "--state-schema", "rekey_state"});
    CHECK_MESSAGE(after.exit_code == 0, after.describe());
    CHECK(contains(after.out, "rekey_state.runs (rekey's own state)"));
  }

  TEST_CASE("a role that may read the token column but not the key is told so (exit 3), never a crash") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("column_grant");
    const auto t = python_tokens("NEW_ENCRYPTION_KEY", 1);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, '" + t[0] + "')");
    const std::string role = "auditor_" + db.name().substr(db.name().size() - 6);
    db.exec("DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role + " LOGIN; GRANT SELECT (v) ON t TO " + role);
    const auto gate =
        run_rekey({"verify", "--db", db.conninfo() + " user=" + role, "--discover", "--require-new"}, key_env());
    CHECK_MESSAGE(gate.exit_code == 3, gate.describe());
    CHECK(contains(gate.out, "NOT CHECKED public.t.v"));
    db.exec("DROP OWNED BY " + role + "; DROP ROLE " + role);
  }

  TEST_CASE("a resumed run sweeps the tables an earlier invocation finished") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("resume_sweep");
    const auto t = python_tokens("OLD_ENCRYPTION_KEY", 3);
    db.exec("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, '" + t[0] + "')");
    CHECK(run(db, {"rotate", "--column", "a.v"}).exit_code == 0);
    db.exec("INSERT INTO a VALUES (0, '" + t[1] + "')");  // behind the finished run's checkpoint
    db.exec("UPDATE rekey.runs SET status = 'stopped'");  // as if another of its tables were unfinished
    CHECK(run(db, {"rotate", "--column", "a.v"}).exit_code == 0);
    CHECK(judge(db)["old"] == 0);
  }

  TEST_CASE("a transaction begun before the gate and still open fails it: it could commit old-key values later") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("open_xact");
    const auto t = python_tokens("NEW_ENCRYPTION_KEY", 1);
    const auto old = python_tokens("OLD_ENCRYPTION_KEY", 1);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, '" + t[0] + "')");
    {
      Session app(db.conninfo());
      app.exec("INSERT INTO t VALUES (2, '" + old[0] + "')");  // not committed yet
      const auto gate = run(db, {"verify", "--discover", "--require-new", "--wait-for-transactions", "500ms"});
      CHECK(gate.exit_code == 3);
      CHECK(contains(gate.out, "NOT CHECKED transaction (pid "));
      app.commit();
    }
    const auto after = run(db, {"verify", "--discover", "--require-new"});
    CHECK(after.exit_code == 3);  // the committed value is seen now
    CHECK(contains(after.out, "under_old_key"));
  }

  TEST_CASE("another role's open transaction fails the gate of an unprivileged role too") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("open_xact_role");
    const auto t = python_tokens("NEW_ENCRYPTION_KEY", 1);
    const auto old = python_tokens("OLD_ENCRYPTION_KEY", 1);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, '" + t[0] + "')");
    // A gate role with no privilege beyond reading the table.
    const std::string role = "gate_" + db.name().substr(db.name().size() - 6);
    db.exec("DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role + " LOGIN; GRANT SELECT ON t TO " + role);
    const auto gate_as_role = [&] {
      return run_rekey({"verify", "--db", db.conninfo() + " user=" + role, "--discover", "--require-new",
                        "--wait-for-transactions", "300ms"},
                       key_env());
    };
    {
      Session app(db.conninfo());  // the superuser's session
      app.exec("INSERT INTO t VALUES (2, '" + old[0] + "')");
      const auto gate = gate_as_role();
      CHECK_MESSAGE(gate.exit_code == 3, gate.describe());
      CHECK_MESSAGE(contains(gate.out, "NOT CHECKED transaction ("), gate.out);
      app.rollback();
    }
    const auto after = gate_as_role();
    CHECK_MESSAGE(after.exit_code == 0, after.describe());
    db.exec("DROP OWNED BY " + role + "; DROP ROLE " + role);
  }
}
