// The census of a batch (migrate/census_engine.h), in memory.
#include "migrate/census_engine.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "crypto/keyring.h"
#include "tests/support/crypto_test_util.h"

namespace {
using namespace rekey;
using namespace std::string_view_literals;
namespace t = rekey::crypto::testing;
}  // namespace

TEST_SUITE("migrate.census_engine") {
  TEST_CASE("census_rows counts each outcome and keeps the first failing keys per column") {
    const auto key = [](int seed) { return t::fernet_of(t::seeded_key(seed)); };
    std::vector<std::unique_ptr<const crypto::Fernet>> old;
    old.push_back(key(2));
    const crypto::Keyring ring(key(1), std::move(old));
    TableShape shape;
    shape.columns = {"a", "b"};
    std::vector<Row> rows;
    const auto token = [&](int seed) { return key(seed)->encrypt("x"sv, 1); };
    rows.push_back({{"1"}, {token(1), std::nullopt}});
    rows.push_back({{"2"}, {token(2), t::b64encode(token(2))}});
    rows.push_back({{"3"}, {token(3), "plain text"}});
    rows.push_back({{"4"}, {token(3), "more text"}});
    const CensusOutcome out = census_rows(shape, ring, rows, 1);
    CHECK(out.rows_seen == 4);
    CHECK(out.counts[0].total == 4);
    CHECK(out.counts[0].under_new == 1);
    CHECK(out.counts[0].under_old == std::vector<std::int64_t>{1});
    CHECK(out.counts[0].undecryptable == 2);
    CHECK(out.counts[0].not_new() == 3);
    CHECK(out.counts[1].null == 1);
    CHECK(out.counts[1].under_old == std::vector<std::int64_t>{1});
    CHECK(out.counts[1].not_token == 2);
    REQUIRE(out.examples.size() == 2);  // the first per column
    CHECK(out.examples[0].key == KeyValues{"2"});
    CHECK(out.examples[0].reason == "under_old_key");
    CHECK(out.examples[1].key == KeyValues{"2"});
    CHECK(out.old_rows == std::vector<KeyValues>{{"2"}});  // the rows a sweep rewrites
    const CensusOutcome more = census_rows(shape, ring, rows, 5);
    REQUIRE(more.examples.size() == 6);  // row by row: three per column
    CHECK(more.examples[2].reason == "hmac_mismatch_all_keys");
    CHECK(more.examples[3].reason == "not_a_token");

    // Counting only values that hold a token: NULLs and plain text are skipped.
    shape.policies.assign(2, ValuePolicy::kValuesWithToken);
    const CensusOutcome tokens = census_rows(shape, ring, rows, 5);
    CHECK(tokens.counts[0].total == 4);
    CHECK(tokens.counts[1].total == 1);
    CHECK(tokens.counts[1].null == 0);
    CHECK(tokens.counts[1].not_token == 0);
    CHECK(tokens.counts[1].not_new() == 1);
  }
}
