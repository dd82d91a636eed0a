#include "migrate/throttle.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "common/log.h"

namespace rekey {
namespace {
constexpr std::chrono::milliseconds kPoll{100};
// Under a pace, batches of a twentieth of a second: smooth WAL and CPU for the
// application beside, rather than bursts. Under --max-rate alone, a tenth (as
// the constructor caps the batch).
constexpr double kPacedBatchSeconds = 0.05;
constexpr double kCappedBatchSeconds = 0.1;
// Time left unused at the rate (a batch that came late) that the next one may
// take: a little, so that slow batches do not lower the rate, never a burst.
constexpr double kBurstSeconds = 0.1;

std::int64_t ns_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Throttle::Throttle(ThrottleSettings settings, std::size_t initial_batch, std::function<ReplicaLag()> replica_lag)
    : settings_(std::move(settings)), replica_lag_(std::move(replica_lag)), batch_size_(initial_batch) {
  if (settings_.max_rate > 0) {
    // Small batches keep a low cap smooth: about ten batches a second at most.
    const auto cap = static_cast<std::size_t>(std::max(1.0, settings_.max_rate / 10));
    batch_size_ = std::min(batch_size_.load(), cap);
    settings_.max_batch = std::min(settings_.max_batch, std::max(cap, std::size_t{1}));
    settings_.min_batch = std::min(settings_.min_batch, settings_.max_batch);
  }
}

std::optional<std::string> Throttle::replicas_hold_back(StopControl& stop) {
  if (!settings_.max_replica_lag || !replica_lag_) return std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_lag_check_) return replicas_hold_back_;
  next_lag_check_ = now + std::chrono::seconds(1);
  const ReplicaLag lag = replica_lag_();
  if (lag.unknown) {
    if (!lag_unknown_since_) lag_unknown_since_ = now;
    if (now - *lag_unknown_since_ >= settings_.replica_lag_unknown_for) {
      log::error("{} for longer than --retry-for: stopping; rerun to continue", *lag.unknown);
      stop.request(StopReason::kReplicaLagUnknown);
    }
    replicas_hold_back_ = *lag.unknown + ": the replica lag is unknown";
  } else if (lag.max_seconds * 1000 > static_cast<double>(settings_.max_replica_lag->count())) {
    lag_unknown_since_.reset();
    replicas_hold_back_ = fmt::format("a standby's replay lag is {:.1f}s", lag.max_seconds);
  } else {
    lag_unknown_since_.reset();
    replicas_hold_back_.reset();
  }
  return replicas_hold_back_;
}

std::optional<Throttle::PauseReason> Throttle::pause_reason(StopControl& stop) {
  struct stat st {};
  if (!settings_.pause_file.empty() && ::stat(settings_.pause_file.c_str(), &st) == 0) {
    return PauseReason{"pause file", "pause file " + settings_.pause_file + " present"};
  }
  {
    const std::lock_guard<std::mutex> lock(pace_mutex_);
    if (pace_paused_) return PauseReason{"pace", *pace_paused_};
  }
  if (auto lag = replicas_hold_back(stop)) return PauseReason{"replica lag", *lag};
  return std::nullopt;
}

void Throttle::set_pace(double rate, std::optional<std::string> paused) {
  const std::lock_guard<std::mutex> lock(pace_mutex_);
  pace_rate_ = rate;
  pace_paused_ = std::move(paused);
}

double Throttle::rate_now() const {
  const std::lock_guard<std::mutex> lock(pace_mutex_);
  return settings_.max_rate > 0 ? std::min(settings_.max_rate, pace_rate_) : pace_rate_;
}

std::size_t Throttle::slot_rows(std::size_t wanted) const {
  const std::lock_guard<std::mutex> lock(pace_mutex_);
  const bool capped = settings_.max_rate > 0 && settings_.max_rate <= pace_rate_;
  if (!capped && std::isinf(pace_rate_)) return wanted;
  const double slot = capped ? settings_.max_rate * kCappedBatchSeconds : pace_rate_ * kPacedBatchSeconds;
  return std::clamp<std::size_t>(static_cast<std::size_t>(slot), 1, wanted);
}

std::size_t Throttle::batch_size() const { return slot_rows(batch_size_.load()); }

double Throttle::seconds_paused() const {
  double total = 0;
  for (const auto& [cause, seconds] : seconds_paused_by()) total += seconds;
  return total;
}

std::map<std::string, double> Throttle::seconds_paused_by() const {
  const std::lock_guard<std::mutex> lock(pace_mutex_);
  return paused_by_;
}

void Throttle::wait_for_rate(StopControl& stop) {
  const auto t = std::chrono::steady_clock::now();
  for (;;) {
    // Due when the last batch's rows fit under the rate: the rate now if it
    // rose meanwhile, else the rate it was taken at (a batch taken before a
    // drop is not charged at the lower rate), less the time left unused.
    const double rate = std::max(rate_now(), last_rate_);
    if (std::isinf(rate) || stop.should_stop()) break;
    const auto due = last_turn_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(last_rows_ / rate - credit_s_));
    const auto now = std::chrono::steady_clock::now();
    if (now >= due) {
      credit_s_ = std::min(kBurstSeconds, std::chrono::duration<double>(now - due).count());
      break;
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kPoll, due - now));
  }
  throttled_ns_ += ns_since(t);
}

void Throttle::wait_while_paused(StopControl& stop) {
  std::optional<PauseReason> reason = pause_reason(stop);
  while (reason && !stop.should_stop()) {
    const auto t = std::chrono::steady_clock::now();
    log::info("paused: {}", reason->text);
    std::optional<PauseReason> next;
    do {
      std::this_thread::sleep_for(kPoll);
      next = pause_reason(stop);
    } while (next == reason && !stop.should_stop());
    const double paused = static_cast<double>(ns_since(t)) / 1e9;
    {
      const std::lock_guard<std::mutex> lock(pace_mutex_);
      paused_by_[reason->cause] += paused;
    }
    if (!next) log::info("resumed after {:.1f}s", paused);
    reason = std::move(next);
    credit_s_ = 0;
  }
}

std::size_t Throttle::wait_for_turn(StopControl& stop, std::size_t rows) {
  const std::lock_guard<std::mutex> turn(turn_mutex_);
  wait_while_paused(stop);
  wait_for_rate(stop);
  if (stop.should_stop()) return 0;
  // No more than a slot's worth at the rate now (it may have dropped since
  // the reader sized its batch).
  rows = slot_rows(rows);
  const double rate = rate_now();
  last_turn_ = std::chrono::steady_clock::now();
  last_rows_ = static_cast<double>(rows);
  last_rate_ = rate;
  rows_read_ += static_cast<std::int64_t>(rows);
  return rows;
}

void Throttle::record_write(std::size_t rows, std::chrono::duration<double> took) {
  if (!settings_.adaptive_batch || rows == 0 || took.count() <= 0) return;
  const double target = std::chrono::duration<double>(settings_.batch_time).count();
  // Move halfway toward the size that would have taken `target`, within bounds.
  const double ideal = static_cast<double>(rows) * target / took.count();
  const double next = (static_cast<double>(batch_size_.load()) + ideal) / 2;
  batch_size_ = std::clamp(static_cast<std::size_t>(next), settings_.min_batch, settings_.max_batch);
}

}  // namespace rekey
