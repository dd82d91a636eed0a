// The one place that decides a command's exit code from how its run ended
// (rotate and verify alike; the codes are common/errors.h's ExitCode).
#pragma once

#include <exception>

#include "common/errors.h"

namespace rekey {

// How a run of rotate or verify ended, as far as its exit code goes.
struct RunOutcome {
  bool stopped = false;         // ended before its whole scope was read (deadline, signal, lost lock...)
  bool found_failures = false;  // a value or an object fails the command's check (see add_*_command)
  // True for rotate: a stopped rotation resumes and decides then, so a stop
  // wins over what it found so far. Verify's findings stand even when stopped.
  bool stop_defers_failures = false;
};

// kUndecryptable (3) for failures found, kStopped (75) for a stop, else kOk;
// `stop_defers_failures` orders the first two.
ExitCode exit_code_for(const RunOutcome& outcome);

// A run ended by `error`: kUsage (2) for a UsageError, else kFailure (1).
ExitCode exit_code_for(const std::exception& error);

}  // namespace rekey
