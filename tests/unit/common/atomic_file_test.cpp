// AtomicFile (common/atomic_file.h): nothing it writes can be redirected, and
// nobody sees a file half written.
#include "common/atomic_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "tests/support/it_support.h"

using namespace rekey::it;

TEST_SUITE("common.atomic_file") {
  TEST_CASE("AtomicFile: mode 0600, and a link planted at the path or at a guessable temporary redirects nothing") {
    TempDir dir;
    const std::string victim = dir.file("victim");
    write_file(victim, "the victim's content\n");
    const std::string target = dir.file("report.json");
    plant_link(victim, target);
    plant_link(victim, target + ".tmp");  // the temporary name rekey once used
    rekey::write_file_atomically(target, "{\"run_id\": 1}\n");
    CHECK(read_file(victim) == "the victim's content\n");
    CHECK(regular_file_mode(target) == 0600);
    CHECK(read_file(target) == "{\"run_id\": 1}\n");
    // Replacing it again leaves no temporary behind.
    rekey::write_file_atomically(target, "second\n");
    CHECK(read_file(target) == "second\n");
    CHECK(names_in(dir.path()) == std::set<std::string>{"victim", "report.json", "report.json.tmp"});
  }

  TEST_CASE("AtomicFile: a failure names the path and the reason, keeps what was there and leaves no temporary") {
    TempDir dir;
    const std::string occupied = dir.file("metrics.prom");
    REQUIRE(::mkdir(occupied.c_str(), 0700) == 0);
    write_file(occupied + "/kept", "kept");
    const std::string is_a_directory = occupied + " (renaming the temporary file over it): Is a directory";
    CHECK_THROWS_WITH_AS(rekey::write_file_atomically(occupied, "x"), doctest::Contains(is_a_directory.c_str()),
                         std::runtime_error);
    CHECK(names_in(dir.path()) == std::set<std::string>{"metrics.prom"});
    CHECK(read_file(occupied + "/kept") == "kept");
    const std::string nowhere = dir.file("missing/report.json");
    const std::string no_directory = nowhere + " (creating a temporary file beside it): No such file";
    CHECK_THROWS_WITH_AS(rekey::write_file_atomically(nowhere, "x"), doctest::Contains(no_directory.c_str()),
                         std::runtime_error);
  }
}
