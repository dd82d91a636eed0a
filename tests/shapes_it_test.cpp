// Integration tests of `rekey rotate` on tables of every shape rekey meets,
// against a real PostgreSQL (REKEY_TEST_DB). Every row is judged afterwards by
// Python's cryptography (tests/pg/fixture.py).
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
}
