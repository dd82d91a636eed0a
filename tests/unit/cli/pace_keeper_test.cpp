// The keeper of --pace auto (cli/pace_keeper.h) with made-up samplers: a
// probe that keeps failing, an anti-wraparound vacuum, and an application
// whose own load grows after the baseline.
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
  t.quiet_settle = 1ms;
  t.rebaseline = std::chrono::seconds(3600);
  return t;
}

template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 400 && !pred(); ++i) std::this_thread::sleep_for(5ms);
  return pred();
}

// A lane reading its whole budget from `throttle`, as a lane does (which
// also counts the pauses it waits out), until it goes out of scope.
class ReadingLane {
 public:
  explicit ReadingLane(Throttle& throttle)
      : thread_([this, &throttle] {
          while (throttle.wait_for_turn(stop_, 1000) > 0) {
          }
        }) {}
  ~ReadingLane() {
    stop_.request(StopReason::kSignal);
    thread_.join();
  }
  ReadingLane(const ReadingLane&) = delete;
  ReadingLane& operator=(const ReadingLane&) = delete;

 private:
  StopControl stop_;
  std::thread thread_;  // last: started once stop_ is built
};

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

TEST_CASE("pace keeper: a strain that outlasts backing off to the floor has the baseline measured again") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  std::atomic<int> samples{0};
  PaceSettings settings;
  settings.settle = 50ms;  // ten samples: enough evidence for each change
  PaceTiming timing = fast();
  timing.rebaseline_at_floor = 200ms;
  // The application's queries slow down for good after the first baseline;
  // rekey's rate makes no difference to them.
  PaceKeeper keeper(
      [&](const Pace&, double) {
        HealthSample s;
        s.probe_ms = 1;
        s.cpu_probe_ms = ++samples > 5 ? 2 : 1;
        s.app_sessions = 4;
        return s;
      },
      throttle, settings, timing);
  ReadingLane lane(throttle);
  // The rate went down to the floor, and later rose again for health.
  const auto rose_from_floor = [&] {
    bool floored = false;
    for (const PaceChange& c : keeper.report().changes) {
      floored |= c.rate <= settings.min_rate;
      if (floored && c.rate > settings.min_rate && c.reason.find("healthy") == 0) return true;
    }
    return false;
  };
  const bool rose = eventually(rose_from_floor);
  CHECK(rose);
}

TEST_CASE("pace keeper: a strain a new baseline does not end is re-measured early once, not every time") {
  Throttle throttle(ThrottleSettings{}, 5000, {});
  std::atomic<int> samples{0};
  PaceSettings settings;
  settings.settle = 50ms;
  PaceTiming timing = fast();
  timing.quiet_settle = 20ms;
  timing.rebaseline_at_floor = 100ms;
  // The application's queries slow down fivefold for good after the first
  // baseline, whatever rekey does: more than a baseline measured again may
  // grow (twofold), so the strain outlasts every new one.
  PaceKeeper keeper(
      [&](const Pace&, double) {
        HealthSample s;
        s.probe_ms = ++samples > 5 ? 5 : 1;
        s.cpu_probe_ms = 1;
        s.app_sessions = 4;
        return s;
      },
      throttle, settings, timing);
  ReadingLane lane(throttle);
  const bool floored = eventually([&] { return keeper.report().now.rate <= settings.min_rate; });
  const double paused_before = throttle.seconds_paused_by()["pace"];
  std::this_thread::sleep_for(1500ms);  // about ten early re-measures' worth, without the once rule
  const double paused = throttle.seconds_paused_by()["pace"] - paused_before;
  const double rate = keeper.report().now.rate;
  CHECK(floored);
  CHECK(rate <= settings.min_rate);
  CHECK(paused < 0.4);  // one pause, seen by the lane in steps of a tenth of a second
}

}  // namespace
