// Config files (cli/config_file.h) and the one discover writes
// (cli/discover_command.h): read back exactly, never a password.
#include "cli/config_file.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli/discover_command.h"
#include "common/errors.h"
#include "db/discovery_queries.h"
#include "tests/support/it_support.h"

namespace {
using namespace rekey;
}  // namespace

TEST_SUITE("cli.config_file") {
  TEST_CASE("config files: TOML strings, arrays over lines, comments; errors name the line") {
    const auto entries = parse_config_text(
        "# comment\ndb = \"host=/tmp port=5 # not a comment\"  # a comment\n"
        "column = [\n  '\"Vault Data\".\"Accounts\".\"Routing Enc\"', # first\n  \"a.\\\"b\\\\c\\\".d\",\n]\n"
        "dry-run = true\nbatch-size=100\n",
        "test.toml");
    REQUIRE(entries.size() == 4);
    CHECK(entries[0].values == std::vector<std::string>{"host=/tmp port=5 # not a comment"});
    CHECK(entries[1].values == std::vector<std::string>{"\"Vault Data\".\"Accounts\".\"Routing Enc\"", "a.\"b\\c\".d"});
    CHECK(entries[2].values == std::vector<std::string>{"true"});
    CHECK(entries[3].key == "batch-size");
    CHECK(entries[3].line == 8);
    for (const std::string weird : {"it's", "a\"b'c", "tab\there", "line\nbreak", "#hash", "\\"}) {
      CAPTURE(weird);
      const auto back = parse_config_text("k = " + config_string(weird) + "\n", "x");
      REQUIRE(back.size() == 1);
      CHECK(back[0].values == std::vector<std::string>{weird});
    }
    CHECK_THROWS_AS(parse_config_text("[rotate]\ncolumn = 'a'\n", "x"), UsageError);
    CHECK_THROWS_WITH_AS(parse_config_text("a = 'b'\nc = 'd\n", "x"), "config file x, line 2: unterminated string",
                         UsageError);
    CHECK_THROWS_AS(parse_config_text("a = ['b' 'c']\n", "x"), UsageError);
  }

  TEST_CASE("rotate_config_text lists rotatable columns, reads back exactly, and never holds a password") {
    const auto column = [](const char* schema, const char* table, const char* name) {
      DiscoveredColumn d;
      d.schema = schema;
      d.table = table;
      d.column = name;
      return d;
    };
    const DiscoveredColumn a = column("Vault Data", "Accounts", "Routing Enc");
    const DiscoveredColumn b = column("public", "users", "phone_enc");
    DiscoveredColumn c = column("public", "log", "x");
    c.rotatable = false;
    c.note = "table has no primary key";
    const std::string text = rotate_config_text({a, b, c}, "host=/tmp dbname=app", "rekey");
    CHECK(it::contains(text, "'\"Vault Data\".\"Accounts\".\"Routing Enc\"'"));
    CHECK(it::contains(text, "#   public.log.x (table has no primary key)"));
    const auto entries = parse_config_text(text, "x");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].key == "db");
    CHECK(entries[1].values ==
          std::vector<std::string>{"\"Vault Data\".\"Accounts\".\"Routing Enc\"", "public.users.phone_enc"});
    const std::string secret = rotate_config_text({b}, "postgresql://app:s3cret@db/app", "other");
    CHECK_FALSE(it::contains(secret, "s3cret"));
    CHECK(it::contains(secret, "state-schema = 'other'"));
  }
}
