#include "cli/pace_keeper.h"

#include <cmath>
#include <limits>

#include "common/log.h"
#include "db/connection.h"

namespace rekey {
namespace {

constexpr const char* kMeasuring = "measuring the probe's baseline (rekey quiet for a moment)";
constexpr int kBlindAfter = 10;             // failed samples in a row before pacing blind
constexpr double kMaxBaselineGrowth = 2.0;  // a baseline measured again is at most this times the first

bool same(const Pace& a, const Pace& b) { return a.rate == b.rate && a.paused == b.paused && a.reason == b.reason; }

}  // namespace

PaceKeeper::PaceKeeper(Sampler sample, Throttle& throttle, PaceSettings settings, PaceTiming timing)
    : sample_(std::move(sample)), throttle_(throttle), timing_(timing), controller_(std::move(settings)) {
  report_.mode = PaceMode::kAuto;
  report_.now = controller_.pace();
  // Alone, rekey needs no baseline (no limit): it is measured once another
  // session shows, with the lanes quiet for it.
  const std::optional<HealthSample> first = try_sample();
  if (!first || !is_idle(*first)) {
    measure_baseline();
    step();  // the lanes start at the pace, not at full speed until the first sample
  }
  thread_ = std::thread([this] { run(); });
}

PaceKeeper::~PaceKeeper() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

double PaceKeeper::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

bool PaceKeeper::wait(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !wake_.wait_for(lock, d, [this] { return stopping_; });
}

std::optional<HealthSample> PaceKeeper::try_sample() {
  try {
    HealthSample s = sample_(controller_.pace(), controller_.baseline_ms());
    failures_ = 0;
    if (!s.sessions_visible && !warned_hidden_) {
      log::warn(
          "pace: rekey's role cannot see other sessions (grant pg_read_all_stats): an application is "
          "assumed, and anti-wraparound vacuums and the standbys' lag are not seen");
      warned_hidden_ = true;
    }
    return s;
  } catch (const std::exception& e) {
    const std::string why = db::error_summary(e);
    if (why != last_warning_) log::warn("pace: the health probe failed: {}", why);
    last_warning_ = why;
    if (++failures_ == kBlindAfter) {
      controller_.blind(why, std::chrono::steady_clock::now(), throttle_.rows_read());
      publish(controller_.pace());
    }
    return std::nullopt;
  }
}

void PaceKeeper::measure_baseline() {
  baseline_at_ = std::chrono::steady_clock::now();  // tried: a failed measure waits its turn too
  std::vector<HealthSample> quiet;
  // One more than kept: the first sample of a connection warms its caches.
  for (int i = 0; i <= timing_.quiet_samples; ++i) {
    if (i > 0 && !wait(timing_.quiet_interval)) return;
    if (auto s = try_sample(); s && i > 0) quiet.push_back(*s);
  }
  if (quiet.empty()) return;
  controller_.set_baseline(quiet, kMaxBaselineGrowth);
  baseline_known_ = true;
  const std::lock_guard<std::mutex> lock(mutex_);
  report_.baseline_ms = controller_.baseline_ms();
  log::debug("pace: probe baseline {:.2f} ms", report_.baseline_ms);
}

void PaceKeeper::step() {
  const std::optional<HealthSample> s = try_sample();
  if (!s) return;
  if (!baseline_known_ && !is_idle(*s)) {
    measure_quietly();  // another session shows for the first time
    return;
  }
  const Pace before = controller_.pace();
  const Pace& now = controller_.observe(*s, std::chrono::steady_clock::now(), throttle_.rows_read());
  if (!same(before, now)) publish(now);
  const std::lock_guard<std::mutex> lock(mutex_);
  report_.now = now;
  report_.p95_ms = controller_.recent_p95_ms();
  report_.wal_bytes_per_s = controller_.wal_bytes_per_s();
  report_.replica_lag_bytes = s->replica_lag_bytes;
}

void PaceKeeper::publish(const Pace& now) {
  throttle_.set_pace(now.rate, now.paused);
  const std::lock_guard<std::mutex> lock(mutex_);
  report_.now = now;
  const double rate = now.paused ? 0 : now.rate;
  const std::string why = now.paused ? *now.paused : now.reason;
  const double before = report_.changes.empty() ? std::numeric_limits<double>::infinity() : report_.changes.back().rate;
  if (report_.changes.size() >= PaceReport::kMaxChanges) report_.changes.pop_back();
  report_.changes.push_back({seconds(), rate, why});
  if (now.paused || rate < before) {  // a pause or a back-off: worth the operator's eye
    log::info("pace: {}: {}", now.paused ? std::string("paused") : rate_text(now.rate), why);
  } else {
    log::debug("pace: {}: {}", rate_text(now.rate), why);
  }
}

void PaceKeeper::run() {
  while (wait(timing_.interval)) {
    if (!controller_.strained_at_floor()) remeasured_at_floor_ = false;
    if (baseline_due()) {
      remeasured_at_floor_ = controller_.strained_at_floor();
      measure_quietly();
    } else {
      step();
    }
  }
}

bool PaceKeeper::baseline_due() const {
  const bool someone_there = !controller_.pace().paused && !std::isinf(controller_.pace().rate);
  const auto since = std::chrono::steady_clock::now() - baseline_at_;
  const bool stale = controller_.strained_at_floor() && !remeasured_at_floor_ && since >= timing_.rebaseline_at_floor;
  return someone_there && (since >= timing_.rebaseline || stale);
}

void PaceKeeper::measure_quietly() {
  throttle_.set_pace(controller_.pace().rate, std::string(kMeasuring));
  if (wait(timing_.quiet_settle)) measure_baseline();
  throttle_.set_pace(controller_.pace().rate, controller_.pace().paused);
}

PaceReport PaceKeeper::report() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return report_;
}

std::pair<double, std::string> PaceKeeper::shown() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (report_.now.paused) return {0, "paused: " + *report_.now.paused};
  return {report_.now.rate, rate_text(report_.now.rate) + ": " + report_.now.reason};
}

}  // namespace rekey
