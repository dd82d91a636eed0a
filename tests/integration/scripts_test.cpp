// Integration tests of the shell scripts against a real PostgreSQL (REKEY_TEST_DB):
// scripts/emergency-rotate.sh end to end, interrupted and rerun, with an existing key file and
// with undecryptable values, and scripts/demo.sh as a whole. Data is seeded and checked by
// Python's cryptography (tests/pg/fixture.py).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;
using namespace std::chrono_literals;

const std::string kScript = source_path("scripts/emergency-rotate.sh");

// Two tables, plain and wrapped tokens under the old key (and NULLs); `garbage` adds undecryptable values.
json emergency_spec(int rows, bool garbage = false) {
  json mix = json{{"old", 9}, {"null", 1}};
  if (garbage) mix["garbage"] = 1;
  const json big_mix = json{{"old", 1}};
  return json{{"seed", 3},
              {"keys", {{"old", "OLD_ENCRYPTION_KEY"}}},
              {"tables",
               {{{"schema", "public"},
                 {"table", "users"},
                 {"rows", rows},
                 {"pk", {{{"name", "id"}, {"type", "bigint"}, {"gen", "int"}}}},
                 {"columns",
                  {{{"name", "phone_enc"}, {"type", "text"}, {"format", "plain"}, {"mix", mix}},
                   {{"name", "account_enc"}, {"type", "text"}, {"format", "wrapped"}, {"mix", big_mix}}}}},
                {{"schema", "billing"},
                 {"table", "cards"},
                 {"rows", rows / 4 + 1},
                 {"pk", {{{"name", "card_id"}, {"type", "uuid"}, {"gen", "uuid"}}}},
                 {"columns", {{{"name", "number_enc"}, {"type", "text"}, {"format", "wrapped"}, {"mix", mix}}}}}}}};
}

Env seed_env() { return Env{{"OLD_ENCRYPTION_KEY", std::string(kOldPassphrase)}}; }

// The script's environment: the current key in ENCRYPTION_KEY, no database (libpq's variables unset too)
// and nothing that could pick another binary.
Env script_env() {
  return Env{{"ENCRYPTION_KEY", std::string(kOldPassphrase)},
             {"REKEY_BUILD_DIR", std::nullopt},
             {"PGHOST", std::nullopt},
             {"PGDATABASE", std::nullopt},
             {"PGSERVICE", std::nullopt}};
}

// As above, with the database in DATABASE_URL, as the script documents.
Env script_env(const TestDatabase& db) {
  Env env = script_env();
  env["DATABASE_URL"] = db.conninfo();
  return env;
}

std::vector<std::string> script_argv(const std::string& state_dir, const std::vector<std::string>& more = {}) {
  std::vector<std::string> argv{kScript, "--state-dir", state_dir, "--rekey", REKEY_BINARY};
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

std::string strip_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Checks every seeded row: rotated values decrypt under `new_key` to the same plaintext and timestamp,
// and no longer under the old key.
json check_rotated(const TestDatabase& db, const std::string& manifest, const std::string& new_key) {
  return check_fixture(db.conninfo(), manifest,
                       json{{"final", "NEW_ENCRYPTION_KEY"}, {"dead", {"OLD_ENCRYPTION_KEY"}}, {"mode", "final"}},
                       Env{{"NEW_ENCRYPTION_KEY", new_key}, {"OLD_ENCRYPTION_KEY", std::string(kOldPassphrase)}});
}

// No form of either key (passphrase, derived key, its halves) in the output.
void check_no_key_in(const ProcessResult& r, const std::string& new_key) {
  for (const std::string& passphrase : {new_key, std::string(kOldPassphrase)}) {
    for (const auto& form : secret_forms(passphrase)) {
      CHECK_MESSAGE(!contains(r.out, form), "a key appears on stdout");
      CHECK_MESSAGE(!contains(r.err, form), "a key appears on stderr");
    }
  }
}

struct FileId {
  ino_t inode = 0;
  mode_t mode = 0;
  bool exists = false;
};

FileId file_id(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, static_cast<mode_t>(st.st_mode & 07777), true};
}

// Waits until no other session is connected to the database (a killed rekey's backends are gone).
void wait_for_no_sessions(TestDatabase& db) {
  const bool gone = wait_until(
      [&] {
        return db.count(
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()") == 0;
      },
      20s, 20ms);
  REQUIRE_MESSAGE(gone, "the killed rekey's sessions did not go away");
}

// The rekey process the script runs (a direct child of `parent` running REKEY_BINARY), or -1.
pid_t rekey_child_of(pid_t parent) {
  const std::string rekey = std::filesystem::canonical(REKEY_BINARY).string();
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces, so parse after the last ')'.
    const std::string stat = read_file(entry.path().string() + "/stat");
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 1));
    std::string state;
    long ppid = 0;
    if (!(rest >> state >> ppid) || ppid != parent) continue;
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path() / "exe", ec).string() == rekey) return std::stoi(name);
  }
  return -1;
}

}  // namespace

TEST_SUITE("integration.scripts") {
  TEST_CASE("emergency-rotate.sh: usage errors exit 2 and touch nothing") {
    TempDir dir;
    const std::string state = dir.file("state");
    struct Case {
      std::vector<std::string> argv;
      Env env;
      std::string message;
    };
    const std::vector<Case> cases{
        {{kScript, "--state-dir", state}, script_env(), "DATABASE_URL"},
        {{kScript, "--db", "dbname=nowhere"}, script_env(), "--state-dir"},
        {{kScript, "--db", "dbname=nowhere", "--state-dir", state},
         Env{{"ENCRYPTION_KEY", std::nullopt}, {"REKEY_BUILD_DIR", std::nullopt}},
         "ENCRYPTION_KEY"},
        {{kScript, "--db", "dbname=nowhere", "--state-dir", state, "--bogus"}, script_env(), "--bogus"},
        {{kScript, "--db", "dbname=nowhere", "--state-dir"}, script_env(), "--state-dir"},
    };
    for (const auto& c : cases) {
      const ProcessResult r = run(c.argv, c.env, 30s);
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, c.message));
      CHECK(!std::filesystem::exists(state));
    }
    const ProcessResult help = run({kScript, "--help"}, script_env(), 30s);
    CHECK(help.exit_code == 0);
    CHECK(contains(help.out, "--deploy-hook"));
  }

  TEST_CASE("emergency-rotate.sh: end to end with --discover, key saved first, deploy hook") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_e2e");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(400), manifest, seed_env());
    const std::string state = dir.file("secrets/emergency");  // neither directory exists yet
    const std::string key_path = state + "/NEW_ENCRYPTION_KEY";
    const std::string hook_out = dir.file("hook.out");

    const ProcessResult r =
        run(script_argv(state, {"--deploy-hook", "printf '%s' \"$REKEY_NEW_KEY_FILE\" > '" + hook_out + "'"}),
            script_env(db), 120s);
    INFO(r.describe());
    REQUIRE(r.exit_code == 0);

    const FileId key = file_id(key_path);
    REQUIRE(key.exists);
    CHECK(key.mode == 0600);
    CHECK(file_id(state).mode == 0700);
    const std::string new_key = strip_newlines(read_file(key_path));
    REQUIRE(new_key.size() >= 32);
    CHECK(new_key != kOldPassphrase);
    for (const auto& entry : std::filesystem::directory_iterator(state)) {
      CHECK_MESSAGE(entry.path().filename().string().rfind(".NEW_ENCRYPTION_KEY", 0) != 0,
                    "a temporary key file was left behind: " << entry.path());
    }

    REQUIRE_DATA_OK(check_rotated(db, manifest, new_key));
    CHECK(db.count("SELECT count(*) FROM public.users") == 400);
    CHECK(read_file(hook_out) == key_path);  // the hook ran, after verify, with the key's path
    check_no_key_in(r, new_key);
    CHECK(contains(r.out, "Next steps"));
    CHECK(contains(r.out, key_path));
    CHECK(contains(r.err, "the gate passed"));
  }

  TEST_CASE("emergency-rotate.sh: killed midway (rekey, then the whole process group) and rerun") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_kill");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    constexpr int kRows = 40000;
    json spec = emergency_spec(kRows);
    spec["tables"].erase(1);  // one big table
    seed_fixture(db.conninfo(), spec, manifest, seed_env());
    const std::string state = dir.file("state");
    const std::string key_path = state + "/NEW_ENCRYPTION_KEY";
    const std::vector<std::string> slow{"--column",
                                        "public.users.phone_enc",
                                        "--column",
                                        "public.users.account_enc",
                                        "--rotate-arg=--batch-size=500",
                                        "--rotate-arg",
                                        "--max-rate=5000"};
    std::vector<ProcessResult> results;

    // 1. SIGKILL to the rekey the script runs: the script reports it and says to rerun.
    {
      Process p(script_argv(state, slow), script_env(db));
      REQUIRE(wait_until([&] { return latest_rows_seen(db) >= 2000 || !p.running(); }, 60s, 20ms));
      REQUIRE(p.running());
      const pid_t rekey = rekey_child_of(p.pid());
      REQUIRE(rekey > 0);
      ::kill(rekey, SIGKILL);
      const ProcessResult r = p.wait(60s);
      INFO(r.describe());
      CHECK(r.exit_code == 1);
      CHECK(contains(r.err, "rerun this script"));
      results.push_back(r);
    }
    const std::string key_text = read_file(key_path);
    const FileId key = file_id(key_path);
    REQUIRE(key.exists);
    wait_for_no_sessions(db);
    const long long after_first = latest_rows_seen(db);
    CHECK(after_first > 0);
    CHECK(after_first < kRows);

    // 2. SIGKILL to the whole process group (a crash): nothing gets to clean up.
    {
      std::vector<std::string> argv{"/usr/bin/setsid"};
      const auto script = script_argv(state, slow);
      argv.insert(argv.end(), script.begin(), script.end());
      Process p(argv, script_env(db));
      REQUIRE(wait_until([&] { return latest_rows_seen(db) >= after_first + 2000 || !p.running(); }, 60s, 20ms));
      REQUIRE(p.running());
      REQUIRE(::getpgid(p.pid()) == p.pid());
      ::kill(-p.pid(), SIGKILL);
      const ProcessResult r = p.wait(60s);
      INFO(r.describe());
      CHECK(r.term_signal == SIGKILL);
      CHECK(contains(r.err, "reusing the new key"));
      CHECK(contains(r.err, "resuming run"));
      results.push_back(r);
    }
    wait_for_no_sessions(db);
    const long long after_second = latest_rows_seen(db);
    CHECK(after_second > after_first);
    CHECK(after_second < kRows);
    CHECK(read_file(key_path) == key_text);

    // 3. Rerun to the end: same key, same run continued, everything verified.
    {
      const std::vector<std::string> columns(slow.begin(), slow.begin() + 4);
      const ProcessResult r = run(script_argv(state, columns), script_env(db), 120s);
      INFO(r.describe());
      REQUIRE(r.exit_code == 0);
      CHECK(contains(r.err, "resuming run"));
      results.push_back(r);
    }
    CHECK(read_file(key_path) == key_text);
    CHECK(file_id(key_path).inode == key.inode);
    CHECK(file_id(key_path).mode == 0600);
    CHECK(db.count("SELECT count(*) FROM rekey.runs") == 1);
    const std::string new_key = strip_newlines(key_text);
    REQUIRE_DATA_OK(check_rotated(db, manifest, new_key));
    for (const auto& r : results) check_no_key_in(r, new_key);
  }

  TEST_CASE("emergency-rotate.sh: no key and no database password on any command line (ps)") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_ps");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(40), manifest, seed_env());
    const std::string password = "Pw-emergency-never-in-ps-41d2";
    // A rekey that records every process's command line each time the script runs it, then runs the real one.
    const std::string seen = dir.file("command-lines");
    const std::string wrapper = dir.file("rekey-wrapper");
    write_file(wrapper, "#!/bin/bash\nps -eo args >> '" + seen + "'\nexec '" + REKEY_BINARY + "' \"$@\"\n");
    REQUIRE(::chmod(wrapper.c_str(), 0700) == 0);
    Env env = script_env(db);
    env["DATABASE_URL"] = db.conninfo() + " password=" + password;
    const std::string state = dir.file("state");
    const ProcessResult r = run({kScript, "--state-dir", state, "--rekey", wrapper}, env, 120s);
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    const std::string new_key = strip_newlines(read_file(state + "/NEW_ENCRYPTION_KEY"));
    const std::string command_lines = read_file(seen);
    CHECK(contains(command_lines, "rekey-wrapper keygen"));
    CHECK(contains(command_lines, "rekey-wrapper rotate"));
    CHECK(contains(command_lines, "rekey-wrapper verify"));
    for (const std::string& secret : {password, new_key, std::string(kOldPassphrase)}) {
      CHECK_FALSE(contains(command_lines, secret));
      CHECK_FALSE(contains(r.out + r.err, secret));
    }
    REQUIRE_DATA_OK(check_rotated(db, manifest, new_key));
  }

  TEST_CASE("emergency-rotate.sh: an existing key file is used, never overwritten; a readable one is refused") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_existing");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(200), manifest, seed_env());
    const std::string state = dir.file("state");
    const std::string key_path = state + "/NEW_ENCRYPTION_KEY";
    REQUIRE(::mkdir(state.c_str(), 0700) == 0);
    const std::string key_text = std::string(kNewPassphrase) + "\n";
    write_file(key_path, key_text);

    // Readable by others: refused before any data is touched.
    REQUIRE(::chmod(key_path.c_str(), 0644) == 0);
    const FileId before = file_id(key_path);
    {
      const ProcessResult r = run(script_argv(state), script_env(db), 60s);
      INFO(r.describe());
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, "readable by group or others"));
      CHECK(!db.schema_exists("rekey"));
      const json untouched = check_fixture(db.conninfo(), manifest, json{{"mode", "untouched"}, {"final", "NEW"}},
                                           Env{{"NEW", std::string(kNewPassphrase)}});
      REQUIRE_DATA_OK(untouched);
    }
    CHECK(file_id(key_path).mode == 0644);  // not "fixed" behind the operator's back either

    REQUIRE(::chmod(key_path.c_str(), 0600) == 0);
    for (int i = 0; i < 2; ++i) {
      // The second run (nothing left to rotate) has a failing deploy hook: exit 1, next steps still shown.
      const ProcessResult r = run(
          script_argv(state, i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"--deploy-hook", "exit 7"}),
          script_env(db), 120s);
      INFO(r.describe());
      REQUIRE(r.exit_code == (i == 0 ? 0 : 1));
      CHECK(contains(r.err, "reusing the new key"));
      CHECK(contains(r.err, "the gate passed"));
      CHECK(contains(r.out, "Next steps"));
      if (i == 1) CHECK(contains(r.err, "deploy hook failed (exit 7)"));
      check_no_key_in(r, kNewPassphrase);
      CHECK(read_file(key_path) == key_text);
      CHECK(file_id(key_path).inode == before.inode);
    }
    REQUIRE_DATA_OK(check_rotated(db, manifest, kNewPassphrase));

    // Once deployed, ENCRYPTION_KEY is the key in the file: that rotation is done; rekey refuses "rotating" to it.
    Env deployed = script_env(db);
    deployed["ENCRYPTION_KEY"] = std::string(kNewPassphrase);
    const ProcessResult again = run(script_argv(state), deployed, 60s);
    INFO(again.describe());
    CHECK(again.exit_code == 2);
    CHECK(contains(again.err, "new --state-dir"));
    CHECK(read_file(key_path) == key_text);
    REQUIRE_DATA_OK(check_rotated(db, manifest, kNewPassphrase));
  }

  TEST_CASE("emergency-rotate.sh: undecryptable values stop it with exit 3, before verify and the deploy hook") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_garbage");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(300, true), manifest, seed_env());
    const std::string state = dir.file("state");
    const std::string hook_out = dir.file("hook.out");
    const ProcessResult r =
        run(script_argv(state, {"--column", "public.users.phone_enc", "--column", "public.users.account_enc",
                                "--column", "billing.cards.number_enc", "--deploy-hook", "touch '" + hook_out + "'"}),
            script_env(db), 120s);
    INFO(r.describe());
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "values no key decrypts"));
    CHECK(contains(r.err, "Do NOT retire the old key"));
    CHECK(!contains(r.err, "the gate passed"));
    CHECK(!std::filesystem::exists(hook_out));
    CHECK(!contains(r.out, "Next steps"));
    const std::string new_key = strip_newlines(read_file(state + "/NEW_ENCRYPTION_KEY"));
    REQUIRE(!new_key.empty());
    check_no_key_in(r, new_key);
    // Everything decryptable is rotated; the undecryptable values are untouched and listed.
    REQUIRE_DATA_OK(check_rotated(db, manifest, new_key));
  }

  TEST_CASE("emergency-rotate.sh: a column outside --column, or a table rotate cannot rewrite, keeps the old key") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_uncovered");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(100), manifest, seed_env());
    const std::string hook_out = dir.file("hook.out");
    const std::string hook = "touch '" + hook_out + "'";
    const std::string state = dir.file("state");
    const auto expect_refusal = [&](const ProcessResult& r, const std::string& why) {
      INFO(r.describe());
      CHECK(r.exit_code == 3);
      CHECK(contains(r.err + r.out, why));
      CHECK(contains(r.err, "Do NOT retire the old key"));
      CHECK(!contains(r.err, "the gate passed"));
      CHECK(!contains(r.out, "Next steps"));
      CHECK(!std::filesystem::exists(hook_out));
    };
    // Named columns are rotated, but the gate checks the whole database: the cards are still old.
    const ProcessResult named =
        run(script_argv(state, {"--column", "public.users.phone_enc", "--deploy-hook", hook}), script_env(db), 120s);
    expect_refusal(named, "the gate FAILED");
    CHECK(contains(named.out, "billing.cards.number_enc"));

    // A copy of still-old values in a table without a primary key: rekey cannot rewrite it.
    db.exec(
        "CREATE TABLE public.export (number_enc text); INSERT INTO public.export SELECT number_enc FROM billing.cards");
    expect_refusal(run(script_argv(state, {"--deploy-hook", hook}), script_env(db), 120s),
                   "NOT ROTATED public.export.number_enc");

    // Once the copy is gone, everything is under the new key: the gate passes, and only then the hook runs.
    db.exec("DROP TABLE public.export");
    const ProcessResult all = run(script_argv(state, {"--deploy-hook", hook}), script_env(db), 120s);
    CHECK_MESSAGE(all.exit_code == 0, all.describe());
    CHECK(contains(all.err, "the gate passed"));
    CHECK(std::filesystem::exists(hook_out));
    REQUIRE_DATA_OK(check_rotated(db, manifest, strip_newlines(read_file(state + "/NEW_ENCRYPTION_KEY"))));
  }

  TEST_CASE("emergency-rotate.sh --store-new-key-command: the key stored before any data is touched, once") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_store");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(200), manifest, seed_env());
    const std::string before = db.checksum("users", "id");
    const std::string state = dir.file("state");
    const std::string key_path = state + "/NEW_ENCRYPTION_KEY";
    const std::string store = dir.file("store.json");
    write_file(store, "{}");
    Env env = script_env(db);
    for (const auto& [name, value] : stand_in_env(store)) env[name] = value;
    const std::string put =
        "aws ssm put-parameter --name /prod/app/ENCRYPTION_KEY --type SecureString --overwrite --value "
        "file:///dev/stdin";
    const std::string get =
        "aws ssm get-parameter --name /prod/app/ENCRYPTION_KEY --with-decryption --query Parameter.Value --output text";
    const auto store_writes = [&] { return json::parse(read_file(store)).value("writes", 0); };
    // The script with --store-new-key-command `put_command`, read back with `get` unless `read_back` is false.
    const auto storing = [&](const std::string& put_command, bool read_back = true) {
      std::vector<std::string> more{"--store-new-key-command", put_command};
      if (read_back) more.insert(more.end(), {"--read-new-key-command", get});
      return run(script_argv(state, more), env, 120s);
    };

    // The store refuses: exit 1, the key saved but no data touched; the command saw no key nor the database.
    const ProcessResult refused = storing(
        "cat >/dev/null; [ -z \"${ENCRYPTION_KEY:-}${SECRET_KEY:-}${DATABASE_URL:-}\" ] || echo INHERITED >&2; "
        "echo AccessDeniedException >&2; exit 254");
    CHECK_MESSAGE(refused.exit_code == 1, refused.describe());
    CHECK(contains(refused.err, "--store-new-key-command failed (exit 254)"));
    CHECK(contains(refused.err, "AccessDeniedException"));
    CHECK_FALSE(contains(refused.err, "INHERITED"));
    const std::string key_text = read_file(key_path);
    const std::string new_key = strip_newlines(key_text);

    // A store command that exits 0 but stores something else: the read-back catches it.
    const ProcessResult wrong = storing(
        "aws ssm put-parameter --name /prod/app/ENCRYPTION_KEY --type SecureString --overwrite --value "
        "file:///dev/null");
    CHECK_MESSAGE(wrong.exit_code == 1, wrong.describe());
    CHECK(contains(wrong.err, "the store does not hold the new key after --store-new-key-command"));
    CHECK(db.checksum("users", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));
    CHECK(store_writes() == 1);

    // A store that echoes what it stored (as some CLIs do): never shown. Read back, then rotated and verified.
    const std::string echoing = put + " && " + get;
    const ProcessResult stored = storing(echoing);
    CHECK_MESSAGE(stored.exit_code == 0, stored.describe());
    CHECK(read_file(key_path) == key_text);
    CHECK(json::parse(read_file(store)).at("aws /prod/app/ENCRYPTION_KEY") == new_key);  // exactly: no newline
    CHECK(store_writes() == 2);
    CHECK(contains(stored.out, "It is also in your secret store (read back"));
    check_no_key_in(stored, new_key);
    REQUIRE_DATA_OK(check_rotated(db, manifest, new_key));

    // Reruns (as step 2 of the next steps says): the store holds the key, read back, or the mark says so.
    const ProcessResult again = storing(echoing);
    CHECK_MESSAGE(again.exit_code == 0, again.describe());
    CHECK(contains(again.err, "the secret store holds the new key"));
    const ProcessResult marked = storing(echoing, false);
    CHECK_MESSAGE(marked.exit_code == 0, marked.describe());
    CHECK(contains(marked.err, "stored by an earlier run"));
    CHECK(store_writes() == 2);
    CHECK(read_file(key_path) == key_text);
  }

  TEST_CASE(
      "emergency-rotate.sh --old-key-command: the current key from the store; a store it reads overwritten is caught") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("emergency_old_command");
    TempDir dir;
    const std::string manifest = dir.file("manifest.json");
    seed_fixture(db.conninfo(), emergency_spec(150), manifest, seed_env());
    const std::string before = db.checksum("users", "id");
    const std::string state = dir.file("state");
    const std::string store = dir.file("store.json");
    // The store holds the current key as the parameter's latest value and as its version 1.
    write_file(store, json{{"aws /prod/app/ENCRYPTION_KEY", kOldPassphrase},
                           {"aws /prod/app/ENCRYPTION_KEY:1", kOldPassphrase}}
                          .dump());
    Env env = script_env(db);
    env["ENCRYPTION_KEY"] = std::nullopt;
    for (const auto& [name, value] : stand_in_env(store)) env[name] = value;
    const std::string get = "--with-decryption --query Parameter.Value --output text";
    const std::vector<std::string> storing{
        "--store-new-key-command",
        "aws ssm put-parameter --name /prod/app/ENCRYPTION_KEY --type SecureString --overwrite --value "
        "file:///dev/stdin",
        "--read-new-key-command", "aws ssm get-parameter --name /prod/app/ENCRYPTION_KEY " + get};
    const auto with_old = [&](const std::string& old_command) {
      std::vector<std::string> more = storing;
      more.insert(more.end(), {"--old-key-command", old_command});
      return run(script_argv(state, more), env, 120s);
    };
    // Reading the parameter's latest value as the current key: once the new key is stored there, it is the new key.
    const ProcessResult latest = with_old("aws ssm get-parameter --name /prod/app/ENCRYPTION_KEY " + get);
    CHECK_MESSAGE(latest.exit_code == 2, latest.describe());
    CHECK(contains(latest.err, "storing the new key changed what it reads. Pin the current key's"));
    CHECK(db.checksum("users", "id") == before);
    CHECK_FALSE(db.schema_exists("rekey"));
    // Pinned to its version: rotated and verified, the current key never in the environment.
    const ProcessResult pinned = with_old("aws ssm get-parameter --name /prod/app/ENCRYPTION_KEY:1 " + get);
    CHECK_MESSAGE(pinned.exit_code == 0, pinned.describe());
    const std::string new_key = strip_newlines(read_file(state + "/NEW_ENCRYPTION_KEY"));
    CHECK(contains(pinned.err, "the secret store holds the new key"));
    check_no_key_in(pinned, new_key);
    REQUIRE_DATA_OK(check_rotated(db, manifest, new_key));
  }

  TEST_CASE("demo.sh runs end to end") {
    REKEY_IT_REQUIRE_DB();  // demo.sh starts a server of its own, but needs the same setup (root, PostgreSQL)
    const std::string build_dir = std::filesystem::path(REKEY_BINARY).parent_path().string();
    const ProcessResult r = run({"/bin/bash", source_path("scripts/demo.sh")},
                                Env{{"REKEY_BUILD_DIR", build_dir}, {"DEMO_USERS", "300"}}, 300s);
    INFO(r.describe());
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "demo finished"));
    CHECK(contains(r.out, "read all"));
    CHECK(!contains(r.out + r.err, "demo-current-key-from-the-services-dotenv-0001"));
  }
}
