// Keys from a secret store's CLI (--new-key-command, --old-key-command)
// against a real PostgreSQL: the README's example for each store, run
// against a stand-in of its tool (tests/stand_ins: each parses its tool's
// arguments), rotates and passes the gate, every row judged by Python; a
// failing or hanging command is exit 2 before anything is touched, naming the
// command, never showing what it printed.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;

json accounts(int seed) {
  const json mix{{"old", 6}, {"new", 3}, {"null", 1}};
  const json t{
      {"schema", "public"},
      {"table", "t"},
      {"rows", 3000},
      {"pk", json::array({json{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}})},
      {"columns", json::array({json{{"name", "a_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", mix}},
                               json{{"name", "b_enc"}, {"type", "text"}, {"format", "wrapped"}, {"mix", mix}}})}};
  return json{{"seed", seed},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}, {"new", "NEW_ENCRYPTION_KEY"}}},
              {"tables", json::array({t})}};
}

// The README's key-command examples: tool -> {"new": command, "old": command}.
std::map<std::string, std::map<std::string, std::string>> readme_examples() {
  const std::string readme = read_file(source_path("README.md"));
  const std::regex line("--(new|old)-key-command '([^']+)'");
  std::map<std::string, std::map<std::string, std::string>> out;
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), line); it != std::sregex_iterator(); ++it) {
    const std::string command = (*it)[2];
    out[command.substr(0, command.find(' '))][(*it)[1]] = command;
  }
  return out;
}

// What each stand-in serves (see tests/stand_ins/_store.py): the secrets the
// README's commands name, the new key at each store's current version.
json fake_store() {
  json store;
  for (const char* id : {"aws /prod/app/ENCRYPTION_KEY", "az prod-kv/encryption-key", "gcloud encryption-key/latest",
                         "vault secret/prod/app#ENCRYPTION_KEY", "op op://Production/app/ENCRYPTION_KEY"}) {
    store[id] = kNewPassphrase;
  }
  for (const char* id :
       {"aws /prod/app/ENCRYPTION_KEY:1", "az prod-kv/encryption-key/4f2a9c", "gcloud encryption-key/1",
        "vault secret/prod/app#ENCRYPTION_KEY@1", "op op://Production/app-previous/ENCRYPTION_KEY"}) {
    store[id] = kOldPassphrase;
  }
  return store;
}

// The environment of a run that takes its keys from the stand-ins only.
Env store_env(const TempDir& dir) {
  write_file(dir.file("store.json"), fake_store().dump());
  Env env = stand_in_env(dir.file("store.json"));
  env["NEW_ENCRYPTION_KEY"] = std::nullopt;
  env["OLD_ENCRYPTION_KEY"] = std::nullopt;
  return env;
}

std::string fingerprint_in(const ProcessResult& r) {
  const auto at = r.out.find("fingerprint ");
  return at == std::string::npos ? std::string() : r.out.substr(at + 12, 8);
}

}  // namespace

TEST_SUITE("integration.key_commands") {
  TEST_CASE("the README's command for each secret store reads its key; rotate and the gate run on them") {
    REKEY_IT_REQUIRE_DB();
    const auto examples = readme_examples();
    REQUIRE(examples.size() == 5);
    const TempDir dir;
    const Env env = store_env(dir);
    const std::string new_fp = fingerprint_in(run_rekey({"check-key", "--key-env", "NEW_ENCRYPTION_KEY"}, key_env()));
    const std::string old_fp = fingerprint_in(run_rekey({"check-key", "--key-env", "OLD_ENCRYPTION_KEY"}, key_env()));
    REQUIRE(new_fp.size() == 8);
    for (const auto& [tool, commands] : examples) {
      REQUIRE_MESSAGE(commands.size() == 2, tool);
      for (const auto& [role, command] : commands) {
        const ProcessResult r = run_rekey({"check-key", "--key-command", command}, env);
        CHECK_MESSAGE(r.exit_code == 0, r.describe());
        CHECK_MESSAGE(fingerprint_in(r) == (role == "new" ? new_fp : old_fp), command);
        CHECK_FALSE(contains(r.out + r.err, kNewPassphrase));
      }
    }

    TestDatabase db("key_commands");
    SeededFixture seeded(db, accounts(71));
    // Rotate with keys from one store, named in the config file; the gate with another's.
    const auto& aws = examples.at("aws");
    write_file(dir.file("rotate.toml"), "column = ['t.a_enc', 't.b_enc']\nnew-key-command = '" + aws.at("new") +
                                            "'\nold-key-command = ['" + aws.at("old") +
                                            "']\nkey-command-timeout = '20s'\n");
    const ProcessResult rotated =
        run_rekey({"rotate", "--db", db.conninfo(), "--config", dir.file("rotate.toml")}, env);
    CHECK_MESSAGE(rotated.exit_code == 0, rotated.describe());
    const auto& vault = examples.at("vault");
    const ProcessResult gate =
        run_rekey({"verify", "--db", db.conninfo(), "--column", "t.a_enc", "--column", "t.b_enc", "--require-new",
                   "--new-key-command", vault.at("new"), "--old-key-command", vault.at("old")},
                  env);
    CHECK_MESSAGE(gate.exit_code == 0, gate.describe());
    REQUIRE_DATA_OK(seeded.check());
  }

  TEST_CASE("a failing or hanging key command: exit 2 before anything is touched, never its output") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("key_command_fails");
    SeededFixture seeded(db, accounts(72));
    const std::string before = db.checksum("t", "id");
    const TempDir dir;
    Env env = store_env(dir);
    const std::string leaked = "LEAKEDKEYLEAKEDKEYLEAKEDKEYLEAKEDKEY";
    write_file(dir.file("denied"), "#!/bin/sh\nprintf " + leaked + "\necho 'AccessDeniedException' >&2\nexit 254\n");
    write_file(dir.file("hangs"), "#!/bin/sh\nsleep 60\n");
    run({"/bin/chmod", "700", dir.file("denied"), dir.file("hangs")});
    const std::string old_command = readme_examples().at("aws").at("old");
    const auto rotate_with = [&](const std::string& new_command, const std::string& timeout) {
      return run_rekey({"rotate", "--db", db.conninfo(), "--column", "t.a_enc", "--new-key-command", new_command,
                        "--old-key-command", old_command, "--key-command-timeout", timeout},
                       env);
    };
    const ProcessResult denied = rotate_with(dir.file("denied"), "30s");
    CHECK_MESSAGE(denied.exit_code == 2, denied.describe());
    CHECK(contains(denied.err, "key command `" + dir.file("denied") + "` failed (exit 254)"));
    CHECK(contains(denied.err, "AccessDeniedException"));  // its stderr passes through
    CHECK_FALSE(contains(denied.out + denied.err, leaked));

    const auto start = std::chrono::steady_clock::now();
    const ProcessResult hung = rotate_with(dir.file("hangs"), "1s");
    CHECK_MESSAGE(hung.exit_code == 2, hung.describe());
    CHECK(contains(hung.err, "did not finish within 1.0s"));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));

    const ProcessResult unknown = rotate_with(
        "aws ssm get-parameter --name /prod/app/NO_SUCH_KEY --with-decryption "
        "--query Parameter.Value --output text",
        "30s");
    CHECK_MESSAGE(unknown.exit_code == 2, unknown.describe());
    CHECK(contains(unknown.err, "no secret /prod/app/NO_SUCH_KEY"));

    // A variable named as well as a command, even by its default name: two sources for one key, refused.
    for (const std::vector<std::string>& both :
         {std::vector<std::string>{"check-key", "--key-env", "ENCRYPTION_KEY", "--key-command", old_command},
          std::vector<std::string>{"rotate", "--db", db.conninfo(), "--column", "t.a_enc", "--new-key-env",
                                   "NEW_ENCRYPTION_KEY", "--new-key-command", old_command}}) {
      const ProcessResult r = run_rekey(both, env);
      CHECK_MESSAGE(r.exit_code == 2, r.describe());
      CHECK(contains(r.err, "give one"));
    }

    CHECK(db.checksum("t", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));

    // The variable --db-env names (the database's password may be in it) is not the command's to see.
    write_file(dir.file("sees_db"), "#!/bin/sh\n[ -z \"${APP_DB:-}\" ] || echo DB-VISIBLE >&2\nprintf '%s' '" +
                                        std::string(kNewPassphrase) + "'\n");
    run({"/bin/chmod", "700", dir.file("sees_db")});
    Env with_db = env;
    with_db["APP_DB"] = db.conninfo();
    const ProcessResult gate = run_rekey({"verify", "--db-env", "APP_DB", "--column", "t.a_enc", "--new-key-command",
                                          dir.file("sees_db"), "--old-key-command", old_command},
                                         with_db);
    CHECK_MESSAGE(gate.exit_code == 0, gate.describe());
    CHECK_FALSE(contains(gate.err, "DB-VISIBLE"));
  }
}
