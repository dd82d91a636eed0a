#include "migrate/pace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace rekey {
namespace {

constexpr double kBudgetUsed = 0.8;        // rekey uses its budget when it reads at least this share of it
constexpr double kDecrease = 0.5;          // the multiplicative decrease
constexpr double kStep = 0.1;              // the additive increase: this share of the rate before the last decrease
constexpr double kSlowStartEnds = 1.25;    // x baseline: the probe slows down, doubling stops
constexpr double kSlowStartLimit = 8;      // x the starting rate: doubling stops there too
constexpr std::size_t kMinEvidence = 3;    // probes since the last change before their latency counts
constexpr double kSaturatingSessions = 2;  // busy sessions on average that can saturate a server

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

double nearest_rank(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::max<std::size_t>(rank, 1) - 1];
}

}  // namespace

const char* to_string(PaceMode mode) { return mode == PaceMode::kAuto ? "auto" : "max"; }

std::string rate_text(double rows_per_s) {
  return std::isinf(rows_per_s) ? std::string("no limit") : fmt::format("{:.0f} rows/s", rows_per_s);
}

bool is_idle(const HealthSample& s) { return s.sessions_visible && s.app_sessions == 0 && s.waiting_sessions == 0; }

double p95(std::vector<double> values) { return nearest_rank(std::move(values), 0.95); }

double p95_of_few(std::vector<double> values) {
  const std::size_t n = values.size();
  if (n < 5 || n >= 20) return p95(std::move(values));
  std::sort(values.begin(), values.end());
  return values[n - 2];  // the nearest rank would be the largest: one outlier would decide
}
double median(std::vector<double> values) { return nearest_rank(std::move(values), 0.5); }

PaceController::PaceController(PaceSettings settings) : settings_(std::move(settings)) {
  pace_.reason = "starting: no limit until another session shows";
}

void PaceController::set_baseline(const std::vector<HealthSample>& quiet, double max_growth) {
  std::vector<double> ms;
  std::vector<double> cpu;
  int waiting = 0;
  for (const auto& s : quiet) {
    ms.push_back(s.probe_ms);
    cpu.push_back(s.cpu_probe_ms);
    waiting = std::max(waiting, s.waiting_sessions);
  }
  const double growth = first_baseline_ms_ && *first_baseline_ms_ > 0
                            ? std::min(1.0, max_growth * *first_baseline_ms_ / std::max(p95(ms), 1e-9))
                            : 1.0;
  baseline_ms_ = p95(ms) * growth;
  baseline_median_ms_ = median(ms) * growth;
  baseline_cpu_ms_ = median(cpu) * growth;
  // Sessions queued meanwhile are a strain still: a baseline measured again
  // (for a probe that slowed) must not make them normal.
  baseline_waiting_ = first_baseline_ms_ ? std::min(baseline_waiting_, waiting) : waiting;
  if (!first_baseline_ms_) first_baseline_ms_ = baseline_ms_;
}

double PaceController::recent_p95_ms() const { return p95_of_few({probes_.begin(), probes_.end()}); }

std::optional<std::string> PaceController::strain(const HealthSample& s) const {
  if (auto why = latency_strain()) return why;
  // Saturation: several sessions running most of the time (one long query
  // alone is not).
  const double samples = static_cast<double>(probes_.size());
  if (probes_.size() >= kMinEvidence && busy_seen_ >= kSaturatingSessions * samples &&
      busy_seen_ >= settings_.saturated * static_cast<double>(sessions_seen_)) {
    return fmt::format("the other sessions keep the server busy ({:.1f} running on average)", busy_seen_ / samples);
  }
  if (s.waiting_sessions > baseline_waiting_ + settings_.waiting_margin) {
    return fmt::format("{} sessions waiting on locks or WAL", s.waiting_sessions);
  }
  return server_strain(s);
}

std::optional<std::string> PaceController::latency_strain() const {
  const double limit = settings_.latency_factor * baseline_ms_ + settings_.latency_slack_ms;
  if (probes_.size() >= kMinEvidence && recent_p95_ms() > limit) {
    return fmt::format("probe p95 {:.1f} ms, over {:.1f} ms (baseline {:.1f} ms)", recent_p95_ms(), limit,
                       baseline_ms_);
  }
  const double typical = median({probes_.begin(), probes_.end()});
  const double typical_limit = settings_.median_factor * baseline_median_ms_ + settings_.latency_slack_ms / 2;
  if (probes_.size() >= kMinEvidence && typical > typical_limit) {
    return fmt::format("probe median {:.1f} ms, over {:.1f} ms (baseline median {:.1f} ms)", typical, typical_limit,
                       baseline_median_ms_);
  }
  const double cpu = median({cpu_probes_.begin(), cpu_probes_.end()});
  if (cpu_probes_.size() >= kMinEvidence && baseline_cpu_ms_ > 0 && cpu > settings_.cpu_factor * baseline_cpu_ms_) {
    return fmt::format("CPU probe median {:.1f} ms, over {:.1f} ms: the server's cores are busy", cpu,
                       settings_.cpu_factor * baseline_cpu_ms_);
  }
  return std::nullopt;
}

std::optional<std::string> PaceController::server_strain(const HealthSample& s) const {
  if (forced_at_change_ >= 0 && s.forced_checkpoints > forced_at_change_) {
    return std::string("a forced checkpoint (WAL beyond max_wal_size)");
  }
  return standby_strain(s);
}

std::optional<std::string> PaceController::standby_strain(const HealthSample& s) const {
  if (s.replica_lag_s > settings_.lag_unhealthy_s) {
    return fmt::format("a standby's replay lag is {:.1f}s", s.replica_lag_s);
  }
  return std::nullopt;
}

std::optional<PaceController::Next> PaceController::next_rate(const HealthSample& s, double used_rate) const {
  const double rate = pace_.rate;
  // Alone, only a lagging standby holds rekey back.
  const std::optional<std::string> why = is_idle(s) ? standby_strain(s) : strain(s);
  if (is_idle(s) && !why) {
    if (std::isinf(rate)) return std::nullopt;
    return Next{Step::kIdle, std::numeric_limits<double>::infinity(), "no other sessions: the database is idle"};
  }
  if (why && std::isinf(rate) && !is_idle(s)) {
    // Another session just came, and already strains: the gentle start at once.
    return Next{Step::kBackOff, start_rate(), *why};
  }
  if (why) {
    // From the rate rekey was using: with no limit, what it read.
    double from = std::isinf(rate) ? (used_rate > 0 ? used_rate : start_rate()) : rate;
    if (used_rate > 0) from = std::min(from, used_rate);
    return Next{Step::kBackOff, std::max(settings_.min_rate, from * kDecrease), *why};
  }
  if (std::isinf(rate)) {
    return Next{Step::kStart, start_rate(), "an application is active: starting gently"};
  }
  if (used_rate < kBudgetUsed * rate || (settings_.ceiling > 0 && rate >= settings_.ceiling)) return std::nullopt;
  // Doubling until the probe starts to slow down (a quarter over the
  // baseline) or up to kSlowStartLimit times the start, then additive: a
  // gentle approach to where strain begins, not an overshoot past it.
  const bool rising = recent_p95_ms() > kSlowStartEnds * baseline_ms_ + settings_.latency_slack_ms / 2;
  // The additive step: a tenth of where strain was last met, and no less
  // than the starting rate (a strain met early must not leave it crawling).
  const double step = std::max({settings_.min_rate, start_rate(), kStep * decreased_from_});
  double next = slow_start_ && !rising && rate < kSlowStartLimit * start_rate() ? rate * 2 : rate + step;
  if (settings_.ceiling > 0) next = std::min(next, settings_.ceiling);
  return Next{
      Step::kRaise, next,
      fmt::format("healthy: probe p95 {:.1f} ms (baseline {:.1f}), CPU probe {:.2f} ms (baseline {:.2f})",
                  recent_p95_ms(), baseline_ms_, median({cpu_probes_.begin(), cpu_probes_.end()}), baseline_cpu_ms_)};
}

const Pace& PaceController::observe(const HealthSample& s, std::chrono::steady_clock::time_point now,
                                    std::int64_t rows_read) {
  if (previous_ && now > previous_at_ && s.wal_bytes >= previous_->wal_bytes) {
    wal_rate_ = (s.wal_bytes - previous_->wal_bytes) / seconds(now - previous_at_);
  }
  if (!previous_) {  // the first sample may change the pace at once; rows count from it
    changed_at_ = now - settings_.settle;
    counted_from_ = now;
    rows_at_change_ = rows_read;
  }
  previous_ = s;
  previous_at_ = now;
  if (forced_at_change_ < 0) forced_at_change_ = s.forced_checkpoints;
  probes_.push_back(s.probe_ms);
  cpu_probes_.push_back(s.cpu_probe_ms);
  busy_seen_ += s.busy_sessions;
  sessions_seen_ += s.app_sessions;
  while (probes_.size() > settings_.window) probes_.pop_front();
  while (cpu_probes_.size() > settings_.window) cpu_probes_.pop_front();
  if (s.wraparound_vacuum) {
    pace_.paused = "an anti-wraparound autovacuum works on " + *s.wraparound_vacuum;
    return pace_;
  }
  if (pace_.paused) {
    pace_.paused.reset();
    change(pace_.rate, "the anti-wraparound autovacuum ended", s, now, rows_read);
    return pace_;
  }
  const double since = seconds(now - changed_at_);
  if (since < seconds(settings_.settle)) return pace_;
  const double counted = seconds(now - counted_from_);
  const double used = counted > 0 ? static_cast<double>(rows_read - rows_at_change_) / counted : 0;
  if (auto next = next_rate(s, used)) {
    strained_at_floor_ =
        next->step == Step::kBackOff && pace_.rate <= settings_.min_rate && latency_strain().has_value();
    if (next->step == Step::kBackOff) {
      decreased_from_ = next->rate / kDecrease;
      slow_start_ = false;
    } else if (next->step == Step::kIdle || next->step == Step::kStart) {
      slow_start_ = true;
    }
    change(next->rate, std::move(next->reason), s, now, rows_read);
  }
  return pace_;
}

double PaceController::start_rate() const {
  return settings_.ceiling > 0 ? std::min(settings_.start_rate, settings_.ceiling) : settings_.start_rate;
}

void PaceController::blind(const std::string& why, std::chrono::steady_clock::time_point now, std::int64_t rows_read) {
  pace_.paused.reset();
  const double rate = std::min(pace_.rate, start_rate());
  change(rate, "the health probe fails (" + why + "): pacing blind", previous_.value_or(HealthSample{}), now,
         rows_read);
}

void PaceController::change(double rate, std::string reason, const HealthSample& s,
                            std::chrono::steady_clock::time_point now, std::int64_t rows_read) {
  pace_.rate = rate;
  pace_.reason = std::move(reason);
  changed_at_ = now;
  counted_from_ = now;
  rows_at_change_ = rows_read;
  forced_at_change_ = s.forced_checkpoints;
  probes_.clear();
  cpu_probes_.clear();
  busy_seen_ = 0;
  sessions_seen_ = 0;
}

}  // namespace rekey
