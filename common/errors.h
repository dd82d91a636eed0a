// Exit codes and the errors that map to them.
#pragma once

#include <stdexcept>
#include <string>

namespace rekey {

enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,        // anything else, after retries
  kUsage = 2,          // usage or configuration error
  kUndecryptable = 3,  // finished, but some values are not under the new key / undecryptable
  kStopped = 75,       // stopped before the end; progress saved, rerun to continue
};

inline int to_int(ExitCode code) { return static_cast<int>(code); }

// A usage or configuration error: bad option, bad key, unknown column. The
// message names what is wrong (a variable, a file, a column) and never
// contains a key or a value read from the database.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Stopped by a signal before anything was changed (a key command running,
// say): exit 75, like any stop; rerunning does it all.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace rekey
