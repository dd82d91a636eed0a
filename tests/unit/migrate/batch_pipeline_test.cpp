// The pipeline both engines run (migrate/batch_pipeline.h).
#include "migrate/batch_pipeline.h"

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

namespace {
using namespace rekey;

// A batch that counts how many of its kind are alive.
struct Counted {
  explicit Counted(int n, std::atomic<int>& alive) : number(n), alive_(alive) { ++alive_; }
  ~Counted() { --alive_; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;

  int number;
  int squared = -1;

 private:
  std::atomic<int>& alive_;
};
}  // namespace

TEST_SUITE("migrate.batch_pipeline") {
  TEST_CASE("every batch read is transformed and consumed once, in the order read") {
    std::mt19937 random(20261130);
    for (int round = 0; round < 40; ++round) {
      const int batches = static_cast<int>(random() % 200);
      const std::size_t threads = 1 + random() % 4;
      const std::size_t in_flight = 1 + random() % 6;
      std::atomic<int> alive{0};
      int read = 0;
      std::vector<int> consumed;
      run_batch_pipeline<Counted>(
          threads, in_flight,
          [&]() -> std::unique_ptr<Counted> {
            if (read == batches) return nullptr;
            return std::make_unique<Counted>(read++, alive);
          },
          [](Counted& b) { b.squared = b.number * b.number; },
          [&](Counted& b) {
            REQUIRE(b.squared == b.number * b.number);
            consumed.push_back(b.number);
          });
      REQUIRE(static_cast<int>(consumed.size()) == batches);
      for (int i = 0; i < batches; ++i) REQUIRE(consumed[static_cast<std::size_t>(i)] == i);
      CHECK(alive.load() == 0);
    }
  }

  TEST_CASE("an exception in any stage reaches the caller, and no batch outlives the run") {
    for (int failing_stage = 0; failing_stage < 3; ++failing_stage) {
      CAPTURE(failing_stage);
      std::atomic<int> alive{0};
      int read = 0;
      const auto fail_at = [&](int stage, const Counted& b) {
        if (stage == failing_stage && b.number == 7) throw std::runtime_error("stage failed");
      };
      CHECK_THROWS_WITH(run_batch_pipeline<Counted>(
                            3, 4,
                            [&]() -> std::unique_ptr<Counted> {
                              auto b = std::make_unique<Counted>(read++, alive);
                              fail_at(0, *b);
                              return b;
                            },
                            [&](Counted& b) { fail_at(1, b); }, [&](Counted& b) { fail_at(2, b); }),
                        "stage failed");
      CHECK(alive.load() == 0);
    }
  }

  // Not run with the others: scripts/test.sh --tsan runs it alone and fails
  // unless ThreadSanitizer reports its race, the proof that what
  // batch_pipeline.h tells ThreadSanitizer about TBB's ordering (and what
  // scripts/tsan.supp hides) leaves a race between two stages visible. The
  // read and consume stages both update `shared` with nothing ordering them,
  // as the reader and writer stages once both counted retries.
  TEST_CASE("race canary: two stages updating one counter unsynchronized" * doctest::skip()) {
    long shared = 0;
    int read = 0;
    std::atomic<int> alive{0};
    run_batch_pipeline<Counted>(
        2, 4,
        [&]() -> std::unique_ptr<Counted> {
          if (read == 200) return nullptr;
          ++shared;
          return std::make_unique<Counted>(read++, alive);
        },
        [](Counted&) {}, [&](Counted&) { ++shared; });
    CHECK(shared == 400);
  }
}
