// The keeper of --pace auto (cli/pace_keeper.h) with made-up samplers: a
// probe that keeps failing, and an anti-wraparound vacuum.
#include "cli/pace_keeper.h"

#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace {
using namespace rekey;
using namespace std::chrono_literals;

PaceTiming fast() {
  PaceTiming t;
  t.interval = 5ms;
  t.quiet_samples = 2;
  t.quiet_interval = 1ms;
  t.rebaseline = std::chrono::seconds(3600);
  return t;
}

template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 400 && !pred(); ++i) std::this_thread::sleep_for(5ms);
  return pred();
}

TEST_CASE("pace keeper: a probe that keeps failing paces blind, with no pause, and says why") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  PaceKeeper keeper([](const Pace&, double) -> HealthSample { throw std::runtime_error("connection refused"); },
                    throttle, PaceSettings{}, fast());
  REQUIRE(eventually([&] { return keeper.report().now.reason.find("pacing blind") != std::string::npos; }));
  CHECK(keeper.report().now.reason.find("connection refused") != std::string::npos);
  CHECK_FALSE(keeper.report().now.paused);
  CHECK(keeper.report().now.rate <= PaceSettings{}.start_rate);
  CHECK(throttle.batch_size() <= 50);  // a twentieth of a second at the blind rate
}

TEST_CASE("pace keeper: an anti-wraparound vacuum pauses the throttle, and its end lifts the pause") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  std::atomic<bool> vacuum{false};
  PaceKeeper keeper(
      [&](const Pace&, double) {
        HealthSample s;
        s.probe_ms = 1;
        s.app_sessions = 1;
        if (vacuum) s.wraparound_vacuum = "public.accounts";
        return s;
      },
      throttle, PaceSettings{}, fast());
  vacuum = true;
  REQUIRE(eventually([&] { return keeper.report().now.paused.has_value(); }));
  CHECK(keeper.report().now.paused->find("public.accounts") != std::string::npos);
  CHECK(keeper.shown().second.find("paused") == 0);
  vacuum = false;
  CHECK(eventually([&] { return !keeper.report().now.paused.has_value(); }));
  bool changed_to_pause = false;
  for (const auto& c : keeper.report().changes) changed_to_pause |= c.rate == 0;
  CHECK(changed_to_pause);
}

}  // namespace
