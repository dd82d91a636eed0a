// The adaptive pace controller (migrate/pace.h), driven by made-up samples
// on a made-up clock.
#include "migrate/pace.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace {
using namespace rekey;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

HealthSample quiet_sample() {
  HealthSample s;
  s.probe_ms = 1.0;
  s.cpu_probe_ms = 1.0;
  s.app_sessions = 4;
  return s;
}

// A controller with a baseline of 1 ms, fed every 200 ms.
struct Driver {
  PaceController pace{PaceSettings{}};
  Clock::time_point now = Clock::now();
  std::int64_t rows = 0;
  Driver() { pace.set_baseline({quiet_sample(), quiet_sample()}); }
  // `n` samples like `s`, rekey reading exactly its budget (or `rows_per_s`).
  const Pace& feed(const HealthSample& s, int n, double rows_per_s = -1) {
    for (int i = 0; i < n; ++i) {
      now += milliseconds(200);
      const double rate = rows_per_s >= 0 ? rows_per_s : (std::isinf(pace.pace().rate) ? 100000 : pace.pace().rate);
      rows += static_cast<std::int64_t>(rate * 0.2);
      pace.observe(s, now, rows);
    }
    return pace.pace();
  }
};

TEST_CASE("pace: no limit on an idle database; a gentle start once an application shows") {
  Driver d;
  HealthSample idle = quiet_sample();
  idle.app_sessions = 0;
  CHECK(std::isinf(d.feed(idle, 10).rate));
  CHECK(d.feed(quiet_sample(), 1).rate == doctest::Approx(PaceSettings{}.start_rate));
  // Healthy, budget used: doubling once per settle period.
  CHECK(d.feed(quiet_sample(), 5).rate == doctest::Approx(2 * PaceSettings{}.start_rate));
  CHECK(d.feed(quiet_sample(), 5).rate == doctest::Approx(4 * PaceSettings{}.start_rate));
}

// A probe five times slower than the baseline.
HealthSample slow_sample() {
  HealthSample s = quiet_sample();
  s.probe_ms = 5;
  return s;
}

TEST_CASE("pace: a slow probe halves the rate, then it grows back additively") {
  Driver d;
  d.feed(quiet_sample(), 28);
  const double before = d.pace.pace().rate;
  const HealthSample slow = slow_sample();
  CHECK(d.feed(slow, 2).rate == before);  // a change only once a second
  CHECK(d.feed(slow, 1).rate == doctest::Approx(before / 2));
  CHECK(d.pace.pace().reason.find("probe p95 5.0 ms") != std::string::npos);
  const double low = d.pace.pace().rate;
  const double after = d.feed(quiet_sample(), 5).rate;
  CHECK(after == doctest::Approx(low + std::max(0.1 * before, PaceSettings{}.start_rate)));
}

TEST_CASE("pace: slow probes with rekey already at the least rate are told, until the rate rises again") {
  Driver d;
  d.feed(quiet_sample(), 12);
  while (d.pace.pace().rate > PaceSettings{}.min_rate) {
    d.feed(slow_sample(), 5);
    CHECK_FALSE(d.pace.strained_at_floor());  // landing on the floor is not yet evidence
  }
  d.feed(slow_sample(), 5);
  CHECK(d.pace.strained_at_floor());
  d.feed(quiet_sample(), 5);
  CHECK(d.pace.pace().rate > PaceSettings{}.min_rate);
  CHECK_FALSE(d.pace.strained_at_floor());
}

TEST_CASE("pace: a strain no baseline explains (waiting sessions, a lagging standby) at the floor is not told") {
  HealthSample waiting = quiet_sample();
  waiting.waiting_sessions = 5;
  HealthSample lag = quiet_sample();
  lag.replica_lag_s = 3;
  for (const HealthSample& bad : {waiting, lag}) {
    Driver d;
    d.feed(quiet_sample(), 12);
    d.feed(bad, 60);
    CHECK(d.pace.pace().rate == PaceSettings{}.min_rate);
    CHECK_FALSE(d.pace.strained_at_floor());
  }
}

TEST_CASE("pace: a rate rekey does not use is not raised") {
  Driver d;
  d.feed(quiet_sample(), 12);
  const double rate = d.pace.pace().rate;
  CHECK(d.feed(quiet_sample(), 20, rate / 2).rate == rate);
}

TEST_CASE("pace: waiting sessions, a forced checkpoint, replica lag, busy cores each back off") {
  HealthSample waiting = quiet_sample();
  waiting.waiting_sessions = 5;
  HealthSample checkpoint = quiet_sample();
  checkpoint.forced_checkpoints = 1;
  HealthSample lag = quiet_sample();
  lag.replica_lag_s = 3;
  HealthSample busy_cores = quiet_sample();
  busy_cores.cpu_probe_ms = 1.5;
  for (const HealthSample& bad : {waiting, checkpoint, lag, busy_cores}) {
    Driver d;
    d.feed(quiet_sample(), 12);
    const double before = d.pace.pace().rate;
    CHECK(d.feed(bad, 5).rate == doctest::Approx(before / 2));
  }
}

TEST_CASE("pace: an anti-wraparound vacuum pauses at once, and its end resumes") {
  Driver d;
  d.feed(quiet_sample(), 12);
  HealthSample vacuum = quiet_sample();
  vacuum.wraparound_vacuum = "public.t";
  CHECK(d.feed(vacuum, 1).paused.value_or("").find("public.t") != std::string::npos);
  CHECK_FALSE(d.feed(quiet_sample(), 1).paused);
}

TEST_CASE("pace: sessions the role cannot see count as an application") {
  Driver d;
  HealthSample hidden = quiet_sample();
  hidden.app_sessions = 0;
  hidden.sessions_visible = false;
  CHECK(d.feed(hidden, 10).rate == doctest::Approx(2 * PaceSettings{}.start_rate));
}

// Invariants over random samples: changes at least `settle` apart, a finite
// rate within [min_rate, ceiling], a decrease only under strain and an
// increase only without it.
TEST_CASE("pace: invariants over random health") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 50; ++round) {
    PaceSettings settings;
    settings.ceiling = round % 2 ? 20000 : 0;
    PaceController pace(settings);
    pace.set_baseline({quiet_sample()});
    Clock::time_point now = Clock::now();
    std::optional<Clock::time_point> last_change;
    std::int64_t rows = 0;
    double rate = pace.pace().rate;
    for (int i = 0; i < 400; ++i) {
      HealthSample s = quiet_sample();
      s.probe_ms = std::uniform_real_distribution<double>(0.2, 4)(rng);
      s.app_sessions = static_cast<int>(rng() % 3);
      s.waiting_sessions = rng() % 10 == 0 ? 4 : 0;
      now += milliseconds(100 + rng() % 200);
      rows += static_cast<std::int64_t>(rng() % 5000);
      const Pace& p = pace.observe(s, now, rows);
      if (p.rate != rate) {
        if (last_change) CHECK(now - *last_change >= settings.settle);
        last_change = now;
        const bool strained =
            p.reason.find("probe ") != std::string::npos || p.reason.find("waiting") != std::string::npos;
        if (p.rate < rate && !std::isinf(rate)) CHECK((strained || p.reason.find("starting") != std::string::npos));
        if (p.rate > rate && !std::isinf(p.rate)) CHECK(p.reason.find("healthy") == 0);
        rate = p.rate;
      }
      if (!std::isinf(p.rate)) {
        CHECK(p.rate >= settings.min_rate);
        if (settings.ceiling > 0) CHECK(p.rate <= settings.ceiling);
      }
    }
  }
}

TEST_CASE("pace: one slow probe among a few is an outlier") {
  Driver d;
  d.feed(quiet_sample(), 28);
  const double before = d.pace.pace().rate;
  d.feed(slow_sample(), 1);
  CHECK(d.feed(quiet_sample(), 2).rate >= before);
}

TEST_CASE("pace: alone, a lagging standby still holds rekey back, a forced checkpoint does not") {
  Driver d;
  HealthSample idle = quiet_sample();
  idle.app_sessions = 0;
  CHECK(std::isinf(d.feed(idle, 10).rate));
  HealthSample checkpoint = idle;
  checkpoint.forced_checkpoints = 3;
  CHECK(std::isinf(d.feed(checkpoint, 6).rate));
  HealthSample lag = idle;
  lag.replica_lag_s = 5;
  CHECK(d.feed(lag, 1).rate == doctest::Approx(100000.0 / 2));  // half of what it read
}

TEST_CASE("pace: blind when the probe fails: no pause, no more than the starting rate") {
  Driver d;
  HealthSample vacuum = quiet_sample();
  vacuum.wraparound_vacuum = "public.t";
  d.feed(vacuum, 1);
  d.pace.blind("connection refused", d.now, d.rows);
  CHECK_FALSE(d.pace.pace().paused);
  CHECK(d.pace.pace().rate <= PaceSettings{}.start_rate);
  CHECK(d.pace.pace().reason.find("connection refused") != std::string::npos);
}

TEST_CASE("pace: the gentle start stays under --max-rate") {
  PaceSettings settings;
  settings.ceiling = 200;
  PaceController pace(settings);
  pace.set_baseline({quiet_sample()});
  CHECK(pace.observe(quiet_sample(), Clock::now(), 0).rate == 200);
}

TEST_CASE("pace: a session that comes and strains at once gets the gentle start, not half of full speed") {
  Driver d;
  HealthSample idle = quiet_sample();
  idle.app_sessions = 0;
  d.feed(idle, 10);
  CHECK(d.feed(slow_sample(), 6).rate <= PaceSettings{}.start_rate);
}

TEST_CASE("pace: a baseline measured again grows at most twofold") {
  PaceController pace{PaceSettings{}};
  pace.set_baseline({quiet_sample()});
  HealthSample slow = quiet_sample();
  slow.probe_ms = 10;
  pace.set_baseline({slow});
  CHECK(pace.baseline_ms() == doctest::Approx(2.0));
}

TEST_CASE("pace: a baseline measured again counts no more waiting sessions: queued sessions still back off") {
  Driver d;
  HealthSample queued = quiet_sample();
  queued.waiting_sessions = 4;
  d.pace.set_baseline({queued, queued});
  d.feed(quiet_sample(), 12);
  const double before = d.pace.pace().rate;
  const Pace& after = d.feed(queued, 5);
  CHECK(after.rate == doctest::Approx(before / 2));
  CHECK(after.reason.find("waiting") != std::string::npos);
}

TEST_CASE("pace: p95 is the nearest rank") {
  CHECK(p95({}) == 0);
  CHECK(p95({3}) == 3);
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  CHECK(p95(v) == 95);
}

}  // namespace
