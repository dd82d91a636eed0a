#include "migrate/stop_control.h"

#include <unistd.h>

#include <csignal>

namespace rekey {
namespace {
volatile std::sig_atomic_t g_signals = 0;
StopControl* g_control = nullptr;

extern "C" void on_signal(int /*signo*/) {
  g_signals = g_signals + 1;
  if (g_signals >= 2) _exit(75);
  static constexpr char kMsg[] = "\nrekey: stopping after the batch in flight (signal again to exit at once)\n";
  const ssize_t ignored = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  (void)ignored;
}
}  // namespace

const char* to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kNone:
      return "none";
    case StopReason::kDeadline:
      return "deadline";
    case StopReason::kSignal:
      return "signal";
    case StopReason::kMaxFailures:
      return "max_failures";
    case StopReason::kRetriesExhausted:
      return "retries_exhausted";
    case StopReason::kLockLost:
      return "lock_lost";
    case StopReason::kReplicaLagUnknown:
      return "replica_lag_unknown";
    case StopReason::kError:
      return "error";
    case StopReason::kUnsettled:
      return "unsettled";
  }
  return "unknown";
}

bool StopControl::should_stop() {
  if (reason_.load() != StopReason::kNone) return true;
  if (g_control == this && g_signals > 0) {
    request(StopReason::kSignal);
    return true;
  }
  if (deadline_ && Clock::now() >= *deadline_) {
    request(StopReason::kDeadline);
    return true;
  }
  return false;
}

void StopControl::request(StopReason reason) {
  StopReason expected = StopReason::kNone;
  reason_.compare_exchange_strong(expected, reason);
}

void install_signal_handlers(StopControl& control) {
  g_control = &control;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace rekey
