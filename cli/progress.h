// Progress of one table for the operator: a bar on a terminal, otherwise one
// JSON line per step on stderr. Call from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace rekey {

enum class ProgressStyle { kBar, kJsonLines, kNone };

// A bar when stderr is a terminal and logs are text; JSON lines otherwise.
ProgressStyle default_progress_style(bool quiet);

class ProgressReporter {
 public:
  ProgressReporter(ProgressStyle style, std::string label, std::int64_t done_before, std::int64_t estimated_total);
  // Reports `rows` seen in this invocation after `elapsed` seconds; rate-limited.
  void update(std::int64_t rows, double elapsed, bool final = false);
  void finish(std::int64_t rows, double elapsed) { update(rows, elapsed, true); }
  // Shows the pace (--pace auto) with each update, and counts it in the ETA:
  // `pace` gives its rows/s (infinity: no limit) and a short text.
  void follow_pace(std::function<std::pair<double, std::string>()> pace) { pace_ = std::move(pace); }

 private:
  ProgressStyle style_;
  std::string label_;
  std::int64_t done_before_;
  std::int64_t total_;
  std::chrono::steady_clock::time_point last_{};
  std::function<std::pair<double, std::string>()> pace_;
};

}  // namespace rekey
