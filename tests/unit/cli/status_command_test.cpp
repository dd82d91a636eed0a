// The pure helpers of `rekey status` (cli/status_command.h).
#include "cli/status_command.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {
using namespace rekey;
}  // namespace

TEST_SUITE("cli.status_command") {
  TEST_CASE("status helpers: target tables and the resume command") {
    CHECK(target_tables(
              "\"Vault Data\".\"Accounts\".\"Blob\"\n\"Vault Data\".\"Accounts\".x\npublic.users.phone_enc\n") ==
          std::vector<std::string>{"\"Vault Data\".\"Accounts\"", "public.users"});
    CHECK(resume_command("rekey rotate --restart --column a.b --restart-x") == "rekey rotate --column a.b --restart-x");
    CHECK(resume_command("rekey rotate --column a.b --restart") == "rekey rotate --column a.b");
  }
}
