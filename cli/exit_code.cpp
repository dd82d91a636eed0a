#include "cli/exit_code.h"

namespace rekey {

ExitCode exit_code_for(const RunOutcome& outcome) {
  const bool failures_count = outcome.found_failures && !(outcome.stopped && outcome.stop_defers_failures);
  if (failures_count) return ExitCode::kUndecryptable;
  if (outcome.stopped) return ExitCode::kStopped;
  return ExitCode::kOk;
}

ExitCode exit_code_for(const std::exception& error) {
  if (dynamic_cast<const Interrupted*>(&error) != nullptr) return ExitCode::kStopped;
  return dynamic_cast<const UsageError*>(&error) != nullptr ? ExitCode::kUsage : ExitCode::kFailure;
}

}  // namespace rekey
