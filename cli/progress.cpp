#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace rekey {

ProgressStyle default_progress_style(bool quiet) {
  if (quiet) return ProgressStyle::kNone;
  if (log::format() == log::Format::kText && ::isatty(STDERR_FILENO) == 1) return ProgressStyle::kBar;
  return ProgressStyle::kJsonLines;
}

ProgressReporter::ProgressReporter(ProgressStyle style, std::string label, std::int64_t done_before,
                                   std::int64_t estimated_total)
    : style_(style), label_(std::move(label)), done_before_(done_before), total_(estimated_total) {}

void ProgressReporter::update(std::int64_t rows, double elapsed, bool final) {
  if (style_ == ProgressStyle::kNone) return;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = style_ == ProgressStyle::kBar ? std::chrono::milliseconds(200) : std::chrono::seconds(2);
  if (!final && now - last_ < interval) return;
  last_ = now;
  const std::int64_t done = done_before_ + rows;
  const std::int64_t total = std::max(total_, done);
  const double rate = elapsed > 0 ? static_cast<double>(rows) / elapsed : 0.0;
  const auto [pace_rate, pace_text] = pace_ ? pace_() : std::pair<double, std::string>{0, ""};
  // The rows left at the rate so far, or at the pace when it is slower now
  // (not while paused: the pause's end is not known).
  const double ahead = pace_ && pace_rate > 0 && pace_rate < rate ? pace_rate : rate;
  const double eta = ahead > 0 ? static_cast<double>(total - done) / ahead : 0.0;
  const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  if (style_ == ProgressStyle::kJsonLines) {
    nlohmann::json j{{"event", "progress"},
                     {"table", label_},
                     {"rows_done", done},
                     {"rows_estimated", total},
                     {"rows_per_second", static_cast<std::int64_t>(rate)},
                     {"eta_seconds", static_cast<std::int64_t>(eta)},
                     {"final", final}};
    if (pace_) j["pace"] = pace_text;
    std::fprintf(stderr, "%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  const std::string pace = pace_ ? "  pace " + pace_text : "";
  std::fprintf(stderr, "\r%s [%s] %lld/%lld rows  %.0f rows/s  ETA %llds%s%s", log::printable(label_).c_str(),
               bar.c_str(), static_cast<long long>(done), static_cast<long long>(total), rate,
               static_cast<long long>(eta), log::printable(pace).c_str(), final ? "\n" : "  ");
  std::fflush(stderr);
}

}  // namespace rekey
