// When to stop: a deadline (--max-duration), SIGINT/SIGTERM, or the engine
// itself (too many failures, retries exhausted, replica lag unknown). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>

namespace rekey {

enum class StopReason {
  kNone,
  kDeadline,
  kSignal,
  kMaxFailures,
  kRetriesExhausted,
  kLockLost,
  kReplicaLagUnknown,  // --max-replica-lag: a standby gone, or the lag unreadable, for longer than --retry-for
  kError,              // another lane of this process failed (its error is what the run reports)
  kUnsettled,          // a table's rows kept changing, or old-key values kept coming back: rerun to finish
};
const char* to_string(StopReason reason);

// Thread-safe once the deadline is set (before any other thread uses it).
class StopControl {
 public:
  using Clock = std::chrono::steady_clock;

  void set_deadline(std::optional<Clock::time_point> deadline) { deadline_ = deadline; }
  // True once any stop was requested or the deadline has passed.
  bool should_stop();
  void request(StopReason reason);
  StopReason reason() const { return reason_.load(); }

 private:
  std::optional<Clock::time_point> deadline_;
  std::atomic<StopReason> reason_{StopReason::kNone};
};

// Routes SIGINT and SIGTERM to `control`: the first finishes the batch in
// flight and stops; a second exits at once with code 75 (every batch is its
// own transaction, so that is safe too). `control` must outlive the process's
// use of it; call once.
void install_signal_handlers(StopControl& control);

}  // namespace rekey
