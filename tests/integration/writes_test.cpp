// What rekey writes and holds in memory: values of a megabyte, and keys that
// are not UTF-8 in a SQL_ASCII database. Against the real PostgreSQL
// (REKEY_TEST_DB); every row judged by Python's cryptography
// (tests/pg/writes.py).
#include <doctest/doctest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/it_support.h"

namespace {

using nlohmann::json;
using namespace rekey::it;

// tests/pg/writes.py `args`: a fill (exit 0, nothing printed) or a check (its JSON).
json writes_py(const std::vector<std::string>& args, const Env& env = key_env()) {
  const ProcessResult r = run_python("tests/pg/writes.py", args, env, std::chrono::minutes(5));
  INFO(r.describe());
  REQUIRE(r.exit_code == 0);
  return r.out.empty() ? json() : json::parse(r.out);
}

}  // namespace

TEST_SUITE("integration.writes") {
  TEST_CASE("200 values of 1 MB: rotated and verified with a peak RSS under 300 MB, every row decrypted") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("large_values");
    const std::string rows = "200";
    const std::string size = std::to_string(1 << 20);
    writes_py({"large-fill", db.conninfo(), rows, size});

    const ProcessResult rotate =
        run_rekey({"rotate", "--db", db.conninfo(), "--column", "big.secret_enc", "--threads", "2"}, key_env(),
                  std::chrono::minutes(5));
    INFO(rotate.describe());
    CHECK(rotate.exit_code == 0);
    MESSAGE("rotate: peak RSS " << rotate.peak_rss_kib / 1024 << " MiB, " << rotate.seconds << " s");
    CHECK(rotate.peak_rss_kib < 300 * 1024);

    const ProcessResult verify =
        run_rekey({"verify", "--db", db.conninfo(), "--column", "big.secret_enc", "--require-new", "--threads", "2"},
                  key_env(), std::chrono::minutes(5));
    INFO(verify.describe());
    CHECK(verify.exit_code == 0);
    MESSAGE("verify: peak RSS " << verify.peak_rss_kib / 1024 << " MiB, " << verify.seconds << " s");
    CHECK(verify.peak_rss_kib < 300 * 1024);

    const ProcessResult gate =
        run_rekey({"verify", "--db", db.conninfo(), "--discover", "--require-new"}, key_env(), std::chrono::minutes(5));
    INFO(gate.describe());
    CHECK(gate.exit_code == 0);
    CHECK(gate.peak_rss_kib < 300 * 1024);

    // A sample counts the rows read, not the rows asked for: batches cut by bytes hold fewer.
    const ProcessResult sample =
        run_rekey({"verify", "--db", db.conninfo(), "--column", "big.secret_enc", "--sample", "50", "--format", "json"},
                  key_env(), std::chrono::minutes(5));
    INFO(sample.describe());
    CHECK(sample.exit_code == 0);
    CHECK(json::parse(sample.out).at("columns").at(0).at("total") == 50);

    const json result = writes_py({"large-check", db.conninfo(), rows, size});
    INFO(result.dump(1));
    CHECK(result.at("ok").get<bool>());
    CHECK(result.at("rows") == 200);
  }

  TEST_CASE("SQL_ASCII: keys that are not UTF-8 rotate, resume from their checkpoint, and fail byte for byte") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("sql_ascii", "ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
    TempDir dir;
    const Env env = key_env(kNewPassphrase, kOldPassphrase, {{"ANOTHER_KEY", kOtherPassphrase}});
    writes_py({"ascii-fill", db.conninfo(), dir.file("manifest.json")}, env);
    const std::vector<std::string> args{"rotate",       "--db", db.conninfo(), "--column", "people.secret_enc",
                                        "--batch-size", "7",    "--max-rate",  "150"};

    // Killed once a checkpoint (a key holding '\xe9\xff' or '\xe4') is committed.
    auto first = start_rekey(args, key_env());
    const bool checkpointed = wait_until(
        [&] {
          return db.schema_exists("rekey") &&
                 db.count("SELECT count(*) FROM rekey.chunks WHERE last_key::text LIKE '%hex%'") > 0;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(20));
    first->signal(SIGKILL);
    const ProcessResult killed = first->wait();
    INFO(killed.describe());
    REQUIRE(checkpointed);
    CHECK(killed.term_signal == SIGKILL);

    const ProcessResult resumed = run_rekey(args, key_env());
    INFO(resumed.describe());
    CHECK(resumed.exit_code == 3);
    CHECK(contains(resumed.err, "resuming run"));
    const ProcessResult status = run_rekey({"status", "--db", db.conninfo()}, key_env());
    INFO(status.describe());
    CHECK(contains(status.out, "primary key k0022\\xe4: "));  // failed keys, their bytes escaped
    CHECK(contains(status.out, "primary key k0042\\xe9\\xff: "));

    const json result = writes_py({"ascii-check", db.conninfo(), dir.file("manifest.json")}, env);
    INFO(result.dump(1));
    CHECK(result.at("ok").get<bool>());
    CHECK(result.at("rows") == 300);
    CHECK(result.at("failures") == 15);
  }
}
