#include "migrate/throttle.h"

#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "common/log.h"

namespace rekey {
namespace {
constexpr std::chrono::milliseconds kPoll{100};

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

std::optional<std::string> Throttle::pause_reason(StopControl& stop) {
  struct stat st {};
  if (!settings_.pause_file.empty() && ::stat(settings_.pause_file.c_str(), &st) == 0) {
    return "pause file " + settings_.pause_file + " present";
  }
  return replicas_hold_back(stop);
}

void Throttle::wait_for_turn(StopControl& stop, std::size_t rows) {
  const std::lock_guard<std::mutex> turn(turn_mutex_);
  std::optional<std::string> reason = pause_reason(stop);
  if (reason) {
    const auto t = std::chrono::steady_clock::now();
    while (reason && !stop.should_stop()) {
      log::info("paused: {}", *reason);
      std::optional<std::string> next;
      do {
        std::this_thread::sleep_for(kPoll);
        next = pause_reason(stop);
      } while (next == reason && !stop.should_stop());
      reason = std::move(next);
    }
    paused_ns_ += ns_since(t);
    log::info("resumed after {:.1f}s", ns_since(t) / 1e9);
  }
  if (settings_.max_rate > 0) {
    // Not before the moment at which the rows already read fit under the cap,
    // counting from the start with paused time excluded.
    const auto due = started_ + std::chrono::nanoseconds(paused_ns_.load()) +
                     std::chrono::nanoseconds(
                         static_cast<std::int64_t>(static_cast<double>(rows_read_.load()) / settings_.max_rate * 1e9));
    const auto t = std::chrono::steady_clock::now();
    while (!stop.should_stop() && std::chrono::steady_clock::now() < due) {
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(kPoll, due - std::chrono::steady_clock::now()));
    }
    throttled_ns_ += ns_since(t);
  }
  rows_read_ += static_cast<std::int64_t>(rows);
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
