#include "common/duration.h"

#include <fmt/format.h>

#include <cmath>

#include "common/errors.h"

namespace rekey {

std::chrono::milliseconds parse_duration(const std::string& text, const std::string& option) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double ms_per_unit = 0;
  if (unit.empty() || unit == "s")
    ms_per_unit = 1000;
  else if (unit == "ms")
    ms_per_unit = 1;
  else if (unit == "m" || unit == "min")
    ms_per_unit = 60000;
  else if (unit == "h")
    ms_per_unit = 3600000;
  if (used == 0 || ms_per_unit == 0 || !(value >= 0) || std::isinf(value)) {
    throw UsageError(option + ": '" + text + "' is not a duration (examples: 500ms, 90s, 45m, 2h)");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(value * ms_per_unit));
}

std::string format_seconds(double seconds) {
  if (seconds < 120) return fmt::format("{:.1f}s", seconds);
  if (seconds < 7200) return fmt::format("{:.1f}m", seconds / 60);
  return fmt::format("{:.1f}h", seconds / 3600);
}

}  // namespace rekey
