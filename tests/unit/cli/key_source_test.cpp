// Key files (cli/key_source.h): private, or refused.
#include "cli/key_source.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "common/errors.h"
#include "tests/support/it_support.h"

using namespace rekey::it;

TEST_SUITE("cli.key_source") {
  TEST_CASE("a key file group or others may access is refused, naming it, its mode and chmod 600, never its text") {
    using rekey::ReadableKeyFile;
    TempDir dir;
    const std::string passphrase = kNewPassphrase;
    const std::string open_file = key_file(dir, "open.key", passphrase + "\n", 0640);
    try {
      rekey::read_key_from_file(open_file, "ENCRYPTION_KEY", ReadableKeyFile::kRefuse);
      FAIL("a key file of mode 0640 was read");
    } catch (const rekey::UsageError& e) {
      const std::string message = e.what();
      CHECK(contains(message, open_file));
      CHECK(contains(message, "mode 0640"));
      CHECK(contains(message, "chmod 600"));
      CHECK(contains(message, "--allow-readable-key-file"));
      CHECK_FALSE(contains(message, "correct horse"));
    }
    const auto allowed = rekey::read_key_from_file(open_file, "ENCRYPTION_KEY", ReadableKeyFile::kAllow);
    CHECK(std::string(allowed.text.begin(), allowed.text.end()) == passphrase);

    // Through a link (secret mounts are links), the file read is the one judged.
    const std::string private_file = key_file(dir, "private.key", passphrase, 0600);
    plant_link(private_file, dir.file("mounted.key"));
    const auto linked = rekey::read_key_from_file(dir.file("mounted.key"), "ENCRYPTION_KEY", ReadableKeyFile::kRefuse);
    CHECK(std::string(linked.text.begin(), linked.text.end()) == passphrase);
    REQUIRE(::chmod(private_file.c_str(), 0604) == 0);
    CHECK_THROWS_WITH_AS(rekey::read_key_from_file(dir.file("mounted.key"), "ENCRYPTION_KEY", ReadableKeyFile::kRefuse),
                         doctest::Contains("mode 0604"), rekey::UsageError);
    CHECK_THROWS_WITH_AS(rekey::read_key_from_file(dir.path(), "ENCRYPTION_KEY", ReadableKeyFile::kAllow),
                         doctest::Contains("not a regular file"), rekey::UsageError);
  }
}
