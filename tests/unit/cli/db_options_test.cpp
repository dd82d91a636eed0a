// Connection strings (cli/db_options.h): every form of a password is found and hidden.
#include "cli/db_options.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/support/it_support.h"

using rekey::it::contains;

TEST_SUITE("cli.db_options") {
  TEST_CASE("hide_passwords and has_password: every form of a password in a connection string") {
    const std::vector<std::string> with_password{
        "host=db user=app password=hunter2 dbname=prod",
        "host=db password = 'hun ter\\'2' dbname=prod",
        "postgresql://app:hunter2@db/prod",
        "postgres://app:hunter2@db:5432/prod?sslmode=require",
        "postgresql://app@db/prod?sslmode=require&password=hunter2",
        "host=db dbname=postgresql://app:hunter2@db/prod",
        "postgresql://app:hunter2 ter@db/prod",  // libpq takes a raw space in a URI's password
    };
    for (const auto& conninfo : with_password) {
      CAPTURE(conninfo);
      CHECK(rekey::has_password(conninfo));
      const std::string hidden = rekey::hide_passwords(conninfo);
      CHECK_FALSE(contains(hidden, "hunter2"));
      CHECK_FALSE(contains(hidden, "ter"));
      CHECK(contains(hidden, "***"));
      CHECK(contains(hidden, "db"));
    }
    for (const std::string conninfo : {"host=db user=app dbname=prod", "postgresql://app@db/prod?sslmode=require",
                                       "host=/tmp port=5432 dbname=passwords"}) {
      CAPTURE(conninfo);
      CHECK_FALSE(rekey::has_password(conninfo));
      CHECK(rekey::hide_passwords(conninfo) == conninfo);
    }
  }
}
