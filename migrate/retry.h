// Retrying database work through transient failures with jittered
// exponential backoff, for up to a time budget.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>

namespace rekey {

struct RetryPolicy {
  std::chrono::milliseconds retry_for{std::chrono::minutes(5)};
  std::chrono::milliseconds first_delay{100};
  std::chrono::milliseconds max_delay{5000};
};

// Thrown when the budget is spent; the caller stops with exit 75.
class RetriesExhausted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs `attempt` until it returns. A transient PortError (is_transient) is logged
// with `what` and retried after a jittered delay; any other error propagates.
// Throws RetriesExhausted once `policy.retry_for` has passed. A stop request
// does not cut retries short: the batch in flight still gets committed.
// `retries` counts the retries made.
void with_retries(const RetryPolicy& policy, const std::string& what, const std::function<void()>& attempt,
                  std::int64_t* retries = nullptr);

}  // namespace rekey
