// Durations as operators write them: 500ms, 90s, 45m, 2h (a bare number is seconds).
#pragma once

#include <chrono>
#include <string>

namespace rekey {

// Throws UsageError naming `option` when `text` is not a positive duration.
std::chrono::milliseconds parse_duration(const std::string& text, const std::string& option);

std::string format_seconds(double seconds);

}  // namespace rekey
