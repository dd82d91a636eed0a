// The WAL's end a flush must reach (db/snapshot.h), from the insert position
// the server reports. No database.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>

#include "db/snapshot.h"

namespace {
using rekey::db::wal_end_from_insert;
constexpr std::uint64_t kPage = 8192;
constexpr std::uint64_t kSegment = std::uint64_t{16} * 1024 * 1024;
}  // namespace

TEST_CASE("wal end: a position just past a page's header is the page's start; any other is itself") {
  CHECK(wal_end_from_insert(5 * kSegment + 40, kPage, kSegment) == 5 * kSegment);  // a segment's first page
  CHECK(wal_end_from_insert(5 * kSegment + 24, kPage, kSegment) == 5 * kSegment + 24);
  CHECK(wal_end_from_insert(5 * kSegment + 3 * kPage + 24, kPage, kSegment) == 5 * kSegment + 3 * kPage);
  CHECK(wal_end_from_insert(5 * kSegment + 3 * kPage + 40, kPage, kSegment) == 5 * kSegment + 3 * kPage + 40);
  CHECK(wal_end_from_insert(3 * kPage + 100, kPage, kSegment) == 3 * kPage + 100);
}

TEST_CASE("wal end: over random positions, never past the insert position, and less only by a page's header") {
  std::mt19937_64 rng(20261201);
  std::uniform_int_distribution<std::uint64_t> segment(0, 1u << 20);
  std::uniform_int_distribution<std::uint64_t> in_segment(0, kSegment - 1);
  for (int i = 0; i < 100000; ++i) {
    std::uint64_t insert = segment(rng) * kSegment + in_segment(rng);
    const bool past_header = i % 3 == 0;
    if (past_header) {
      insert -= insert % kPage;
      insert += insert % kSegment == 0 ? 40 : 24;
    }
    const std::uint64_t end = wal_end_from_insert(insert, kPage, kSegment);
    const std::uint64_t header = insert % kSegment < kPage ? 40 : 24;
    CHECK(end <= insert);
    CHECK((end == insert || (insert - end == header && end % kPage == 0)));
    if (past_header) CHECK(end % kPage == 0);
  }
}
