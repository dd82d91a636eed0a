// The throttle under a pace set from outside (migrate/throttle.h).
#include "migrate/throttle.h"

#include <doctest/doctest.h>

#include <chrono>
#include <limits>
#include <thread>

namespace {
using namespace rekey;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr double kNoLimit = std::numeric_limits<double>::infinity();

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TEST_CASE("throttle: a turn takes a twentieth of a second's rows at the pace, at least one") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  StopControl stop;
  CHECK(throttle.wait_for_turn(stop, 5000) == 5000);
  throttle.set_pace(1000, std::nullopt);
  CHECK(throttle.wait_for_turn(stop, 5000) == 50);
  throttle.set_pace(5, std::nullopt);
  CHECK(throttle.batch_size() == 1);
}

TEST_CASE("throttle: a batch taken before the pace dropped is not charged at the lower rate") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  StopControl stop;
  throttle.wait_for_turn(stop, 5000);  // no limit yet
  throttle.set_pace(1000, std::nullopt);
  const auto t = Clock::now();
  throttle.wait_for_turn(stop, 50);
  throttle.wait_for_turn(stop, 50);  // one slot (50 ms) after the first at the new rate
  CHECK(seconds_since(t) < 1.0);     // charged at the new rate, 5000 rows would have taken 5 s
}

TEST_CASE("throttle: the pace's rate holds over many turns") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  StopControl stop;
  throttle.set_pace(2000, std::nullopt);
  const auto t = Clock::now();
  std::size_t rows = 0;
  while (rows < 1000) rows += throttle.wait_for_turn(stop, 5000);
  // 1000 rows at 2000 rows/s: about half a second (the first batch goes at once).
  CHECK(seconds_since(t) >= 0.35);
  CHECK(seconds_since(t) < 2.0);
}

TEST_CASE("throttle: a pause set by the pace holds the lanes until lifted, and is counted by cause") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  StopControl stop;
  throttle.set_pace(kNoLimit, std::string("an anti-wraparound autovacuum works on public.t"));
  std::thread lift([&] {
    std::this_thread::sleep_for(300ms);
    throttle.set_pace(kNoLimit, std::nullopt);
  });
  const auto t = Clock::now();
  CHECK(throttle.wait_for_turn(stop, 10) == 10);
  lift.join();
  CHECK(seconds_since(t) >= 0.25);
  CHECK(throttle.seconds_paused_by().at("pace") >= 0.2);
}

TEST_CASE("throttle: a stop ends a pause, and the turn reads nothing") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  StopControl stop;
  throttle.set_pace(kNoLimit, std::string("measuring"));
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    stop.request(StopReason::kSignal);
  });
  CHECK(throttle.wait_for_turn(stop, 10) == 0);
  stopper.join();
}

}  // namespace
