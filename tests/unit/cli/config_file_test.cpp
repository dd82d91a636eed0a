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
    CHECK_THROWS_WITH_AS(parse_config_text("a = 'b'\nc = 'd\n", "x"), doctest::Contains("config file x, line 2:"),
                         UsageError);
    CHECK_THROWS_AS(parse_config_text("a = ['b' 'c']\n", "x"), UsageError);
  }

  TEST_CASE("config files: all of TOML; [[table]] and inline tables give a table's columns, in the file's order") {
    using V = std::vector<std::string>;
    const auto entries = parse_config_text(R"(# rotate.toml
pace = 'max'
old-key-command = [
  'vault kv get -version=1 -field=K secret/app',  # the previous version
  "op read op://v/i/f",
]
workers = 3
max-rate = 2500.5
dry-run = true

[[table]]
name = 'public.users'
columns = ['phone_enc', '"Account Enc"']

[[table]]
name = '"Vault Data".cards'
columns = ['number_enc']
)",
                                           "full.toml");
    REQUIRE(entries.size() == 7);
    CHECK(entries[0].key == "pace");
    CHECK(entries[0].values == V{"max"});
    CHECK(entries[1].values == V{"vault kv get -version=1 -field=K secret/app", "op read op://v/i/f"});
    CHECK(entries[2].values == V{"3"});
    CHECK(entries[3].values == V{"2500.5"});
    CHECK(entries[4].values == V{"true"});
    CHECK(entries[5].key == "column");
    CHECK(entries[5].values == V{"public.users.phone_enc", "public.users.\"Account Enc\""});
    CHECK(entries[5].line == 11);  // its [[table]] line
    CHECK(entries[6].values == V{"\"Vault Data\".cards.number_enc"});

    const auto inline_tables =
        parse_config_text("table = [{ name = 'a.t', columns = ['x'] }, { name = 'b.u', columns = ['y', 'z'] }]\n", "x");
    REQUIRE(inline_tables.size() == 2);
    CHECK(inline_tables[1].values == V{"b.u.y", "b.u.z"});

    // What an older rekey read: a bare word, read as a string (with a warning).
    const auto bare =
        parse_config_text("pace = max  # a maintenance window\nkey-format = fernet\nworkers = 2\n", "old.toml");
    REQUIRE(bare.size() == 3);
    CHECK(bare[0].values == V{"max"});
    CHECK(bare[1].values == V{"fernet"});
    CHECK(bare[2].values == V{"2"});
  }

  TEST_CASE("the README's config file example reads as documented") {
    const std::string readme = it::read_file(it::source_path("README.md"));
    const auto start = readme.find("```toml\n");
    REQUIRE(start != std::string::npos);
    const auto end = readme.find("```", start + 8);
    const auto entries = parse_config_text(readme.substr(start + 8, end - start - 8), "README.md");
    REQUIRE(entries.size() == 6);
    CHECK(entries[2].key == "new-key-command");
    CHECK(entries[4].values == std::vector<std::string>{"public.users.phone_enc", "public.users.\"Account Enc\""});
    CHECK(entries[5].values == std::vector<std::string>{"billing.cards.number_enc"});
  }

  TEST_CASE("config files: a value of the wrong shape is refused, naming the file and line") {
    const auto refused = [](const std::string& text, const std::string& words) {
      CAPTURE(text);
      CHECK_THROWS_WITH_AS(parse_config_text(text, "f.toml"), doctest::Contains(words.c_str()), UsageError);
    };
    refused("column = 'a.b'\n[rotate]\npace = 'max'\n", "line 2: rotate takes a value or an array");
    refused("[[table]]\ncolumns = ['a']\n", "without name");
    refused("[[table]]\nname = 't'\ncolumns = ['a']\nbatch-size = 5\n", "line 4: table: unknown setting batch-size");
    refused("[[table]]\nname = 't'\n", "no columns");
    refused("when = 1979-05-27\n", "not a table or a date");
    refused("column = [['a'], ['b']]\n", "no nested arrays");
    refused("pace = max extra\n", "line 1:");
    refused("table = 'x'\n", "use [[table]]");
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
