#include "migrate/retry.h"

#include <random>
#include <thread>

#include "common/log.h"
#include "migrate/port_error.h"

namespace rekey {

void with_retries(const RetryPolicy& policy, const std::string& what, const std::function<void()>& attempt,
                  std::int64_t* retries) {
  const auto give_up_at = std::chrono::steady_clock::now() + policy.retry_for;
  std::chrono::milliseconds delay = policy.first_delay;
  thread_local std::mt19937 rng{std::random_device{}()};
  for (int n = 1;; ++n) {
    try {
      attempt();
      return;
    } catch (const std::exception& e) {
      if (!is_transient(e)) throw;
      if (std::chrono::steady_clock::now() >= give_up_at) {
        throw RetriesExhausted(what + ": still failing after " + std::to_string(policy.retry_for.count() / 1000) +
                               "s of retries: " + e.what());
      }
      std::uniform_int_distribution<long> jitter(delay.count() / 2, delay.count());
      const std::chrono::milliseconds wait{jitter(rng)};
      log::warn("{}: {} (attempt {}; retrying in {} ms)", what, e.what(), n, wait.count());
      if (retries != nullptr) ++*retries;
      const auto until = std::chrono::steady_clock::now() + wait;
      while (std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      delay = std::min(policy.max_delay, delay * 2);
    }
  }
}

}  // namespace rekey
