// `rekey discover`, `rekey verify` and `rekey status` against a real
// PostgreSQL (REKEY_TEST_DB) seeded by Python's cryptography the way the
// service writes, with decoy columns beside the encrypted ones.
#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cli/config_file.h"
#include "cli/discover_command.h"
#include "cli/status_command.h"
#include "common/errors.h"
#include "crypto/keyring.h"
#include "db/discovery_queries.h"
#include "migrate/census_engine.h"
#include "tests/support/crypto_test_util.h"
#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey;
using namespace std::string_view_literals;
namespace t = rekey::crypto::testing;

// The encrypted columns of the seeded database (schema, table, column, format).
using ColumnId = std::tuple<std::string, std::string, std::string>;
const std::set<ColumnId> kEncrypted = {{"public", "users", "phone_enc"},
                                       {"Vault Data", "Accounts", "Routing Enc"},
                                       {"Vault Data", "Accounts", "Blob"},
                                       {"Vault Data", "Accounts", "Sparse Enc"},
                                       {"billing", "Invoice Lines", "card_enc"}};

constexpr const char* kFixture = "tests/pg/dvs_fixture.py";

// A database seeded by tests/pg/dvs_fixture.py.
struct Seeded {
  it::TestDatabase db;
  it::TempDir dir;
  Seeded(const std::string& label, int rows) : db(label) {
    const auto r = it::run_python(kFixture, {"seed", db.conninfo(), std::to_string(rows)}, it::key_env());
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
  }
  json census() const {
    const auto r = it::run_python(kFixture, {"census", db.conninfo()}, it::key_env());
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    return json::parse(r.out);
  }
  it::ProcessResult rekey(std::vector<std::string> args, const it::Env& env = it::key_env()) const {
    args.insert(args.begin() + 1, {"--db", db.conninfo()});
    return it::run_rekey(args, env);
  }
};

std::int64_t sum_values(const json& object) {
  std::int64_t sum = 0;
  for (const auto& [k, v] : object.items()) sum += v.get<std::int64_t>();
  return sum;
}

}  // namespace

TEST_SUITE("integration.discover_verify_status") {
  TEST_CASE("discover finds exactly the encrypted columns and writes a config rotate accepts") {
    REKEY_IT_REQUIRE_DB();
    Seeded s("discover", 2000);
    const auto r = s.rekey({"discover", "--format", "json"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    const json found = json::parse(r.out)["columns"];
    std::set<ColumnId> ids;
    for (const auto& c : found) {
      ids.insert({c["schema"].get<std::string>(), c["table"].get<std::string>(), c["column"].get<std::string>()});
      CHECK(c["tokens"].get<int>() == c["sampled"].get<int>());
      CHECK(c["format"] == (c["column"] == "Routing Enc" ? "wrapped" : "plain"));
      CHECK(c["keys"].size() >= 1);                                // keys were in the environment
      if (c["column"] == "Sparse Enc") CHECK(c["sampled"] == 40);  // 98% NULL, still found
      CHECK(c["values_with_tokens"] >= c["sampled"]);              // every row counted, a sample read
    }
    CHECK(ids == kEncrypted);
    CHECK_FALSE(s.db.schema_exists("rekey"));

    const auto only = s.rekey({"discover", "--format", "json", "--schema", "billing"}, {});  // no keys: no attribution
    REQUIRE_MESSAGE(only.exit_code == 0, only.describe());
    REQUIRE(json::parse(only.out)["columns"].size() == 1);
    CHECK_FALSE(json::parse(only.out)["columns"][0].contains("keys"));
    CHECK(s.rekey({"discover", "--schema", "nope"}).exit_code == 2);

    const std::string config = s.dir.file("rotate.toml");
    const auto emitted = s.rekey({"discover", "--emit-config", config});
    REQUIRE_MESSAGE(emitted.exit_code == 0, emitted.describe());
    CHECK(it::contains(it::read_file(config), "'\"Vault Data\".\"Accounts\".\"Routing Enc\"'"));
    const auto dry = it::run_rekey({"rotate", "--config", config, "--dry-run"}, it::key_env());
    REQUIRE_MESSAGE(dry.exit_code == 0, dry.describe());
    for (const char* column : {"Routing Enc", "Sparse Enc", "card_enc", "phone_enc", "Blob"})
      CHECK(it::contains(dry.out, column));
  }

  TEST_CASE("verify matches a Python census, writes nothing, and --require-new passes only after rotation") {
    REKEY_IT_REQUIRE_DB();
    Seeded s("verify", 2000);
    const json expected = s.census();
    const std::string before = s.db.row_versions("public.users", "id");
    const auto r = s.rekey({"verify", "--discover", "--format", "json", "--report", s.dir.file("verify.json")});
    REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
    const json got = json::parse(r.out);
    CHECK(got == json::parse(it::read_file(s.dir.file("verify.json"))));
    REQUIRE(got["columns"].size() == kEncrypted.size());
    for (const auto& c : got["columns"]) {
      const std::string id =
          c["schema"].get<std::string>() + "|" + c["table"].get<std::string>() + "|" + c["column"].get<std::string>();
      CAPTURE(id);
      const json& e = expected.at(id);
      // --discover counts the values that hold a token: every non-NULL one here.
      CHECK(c["total"] == e["total"].get<int>() - e["null"].get<int>());
      CHECK(c["null"] == 0);
      CHECK(c["new_key"] == e["new"]);
      CHECK(sum_values(c["old_keys"]) == e["old"].get<std::int64_t>());
      CHECK(c["undecryptable"].get<int>() + c["not_token"].get<int>() == e["other"].get<int>());
    }
    const auto decoys = s.rekey({"verify", "--column", "public.users.email", "--format", "json"});
    CHECK(json::parse(decoys.out)["columns"][0]["not_token"] == expected["public|users|email"]["other"]);
    CHECK(decoys.exit_code == 0);  // not-a-token fails only --require-new
    CHECK(s.rekey({"verify", "--column", "public.users.email", "--require-new"}).exit_code == 3);
    CHECK(s.db.row_versions("public.users", "id") == before);
    CHECK_FALSE(s.db.schema_exists("rekey"));

    const auto sample = s.rekey({"verify", "--discover", "--sample", "7", "--format", "json"});
    const json sampled = json::parse(sample.out)["columns"];
    for (const auto& c : sampled) CHECK(c["total"] <= 7);
    CHECK(sampled.size() >= 4);
    // A sample proves nothing about the rows it skipped: never with the gate.
    CHECK(s.rekey({"verify", "--discover", "--sample", "7", "--require-new"}).exit_code == 2);
    CHECK(s.rekey({"verify", "--column", "public.users.nope"}).exit_code == 2);
    CHECK(s.rekey({"verify"}).exit_code == 2);

    CHECK(s.rekey({"verify", "--discover", "--require-new"}).exit_code == 3);
    const auto rotated = s.rekey({"rotate", "--discover"});
    REQUIRE_MESSAGE(rotated.exit_code == 0, rotated.describe());
    const auto after = s.rekey({"verify", "--discover", "--require-new"});
    CHECK_MESSAGE(after.exit_code == 0, after.describe());
    const json census = s.census();
    for (const auto& [id, c] : census.items()) {
      if (id.find("email") != std::string::npos || id.find("Random") != std::string::npos) continue;
      CAPTURE(id);
      CHECK(c["new"].get<int>() == c["total"].get<int>() - c["null"].get<int>());
    }
  }

  TEST_CASE("verify: undecryptable values exit 3 and are named by primary key") {
    REKEY_IT_REQUIRE_DB();
    it::TestDatabase db("verify_bad");
    const auto key = it::derive_service_key(it::kOtherPassphrase).urlsafe_b64;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    it::TempDir dir;
    const std::string script = dir.file("one.py");
    it::write_file(script,
                   "import base64,os,sys,psycopg2\nfrom cryptography.fernet import Fernet\n"
                   "c=psycopg2.connect(sys.argv[1]);k=Fernet(os.environ['K'].encode())\n"
                   "c.cursor().execute('INSERT INTO t VALUES (1,%s),(2,%s),(3,NULL)',"
                   "(k.encrypt(b'x').decode(),'not a token'));c.commit()\n");
    const auto seeded = it::run({"/usr/bin/python3", script, db.conninfo()}, {{"K", key}});
    REQUIRE_MESSAGE(seeded.exit_code == 0, seeded.describe());
    const auto r =
        it::run_rekey({"verify", "--db", db.conninfo(), "--column", "t.v", "--format", "json"}, it::key_env());
    CHECK(r.exit_code == 3);
    const json c = json::parse(r.out)["columns"][0];
    CHECK(c["undecryptable"] == 1);
    CHECK(c["not_token"] == 1);
    CHECK(c["null"] == 1);
    REQUIRE(c["examples"].size() == 2);
    CHECK(c["examples"][0] == json{{"primary_key", "1"}, {"reason", "hmac_mismatch_all_keys"}});
    for (const auto& form : it::secret_forms(it::kNewPassphrase)) CHECK_FALSE(it::contains(r.out + r.err, form));
  }

  TEST_CASE("status: no runs, a stopped run and how to resume it, an interrupted run, a running one") {
    REKEY_IT_REQUIRE_DB();
    Seeded s("status", 300);
    const auto none = s.rekey({"status"});
    CHECK(none.exit_code == 0);
    CHECK(it::contains(none.out, "no runs yet"));
    CHECK_FALSE(s.db.schema_exists("rekey"));

    CHECK(s.rekey({"rotate", "--discover", "--max-duration", "1ms", "--restart"}).exit_code == 75);
    const auto shown = s.rekey({"status", "--format", "json"});
    REQUIRE_MESSAGE(shown.exit_code == 0, shown.describe());
    json run = json::parse(shown.out)["runs"][0];
    CHECK(run["state"] == "stopped");
    CHECK(run["targets"].size() == kEncrypted.size());
    const std::string resume = run["resume_command"];
    CHECK(it::contains(resume, "rotate --db"));
    CHECK(it::contains(resume, "--discover --max-duration 1ms"));
    CHECK_FALSE(it::contains(resume, "--restart"));
    const auto text = s.rekey({"status"});
    CHECK(it::contains(text.out, "run 1: stopped"));
    CHECK(it::contains(text.out, resume));

    // A runner that died mid-run leaves "running" behind, but not its locks.
    s.db.exec("UPDATE rekey.runs SET status = 'running', finished_at = NULL");
    run = json::parse(s.rekey({"status", "--run-id", "1", "--format", "json"}).out)["runs"][0];
    CHECK(run["state"] == "stopped (interrupted)");
    CHECK(run["resume_command"].is_string());
    {
      it::Session runner(s.db.conninfo());
      runner.exec(
          "SELECT pg_advisory_lock(7497067, 'public.users'::regclass::oid::int4)");  // rekey's lock: its space, the OID
      run = json::parse(s.rekey({"status", "--run-id", "1", "--format", "json"}).out)["runs"][0];
      CHECK(run["state"] == "running");
    }
    CHECK(s.rekey({"status", "--run-id", "99"}).exit_code == 2);

    const auto finished = s.rekey({"rotate", "--discover"});
    REQUIRE_MESSAGE(finished.exit_code == 0, finished.describe());
    run = json::parse(s.rekey({"status", "--format", "json"}).out)["runs"][0];
    CHECK(run["state"] == "finished");
    CHECK(run["resume_command"].is_null());
    for (const auto& table : run["tables"]) {
      CHECK(table["done"] == true);
      CHECK(table["percent"] == 100.0);
    }
    CHECK(run["units"]["left"] == 0);
    CHECK(run["units"]["done"].get<long long>() > 0);
    const std::size_t tables = run["tables"].size();

    // A state schema an older rekey made has no work units: status reads it as it is.
    s.db.exec("DROP TABLE rekey.chunks");
    const auto older = s.rekey({"status", "--format", "json"});
    REQUIRE_MESSAGE(older.exit_code == 0, older.describe());
    run = json::parse(older.out)["runs"][0];
    CHECK(run["state"] == "finished");
    CHECK(run["units"]["done"] == 0);
    CHECK(run["tables"].size() == tables);
  }
}
