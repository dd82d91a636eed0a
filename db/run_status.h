// Where a rotation run stands, as the state schema's runs table records it
// (its `status` column holds to_string of it).
#pragma once

#include <string_view>

namespace rekey::db {

enum class RunStatus {
  kRunning,   // started or resumed, not ended (or its process died: see `rekey status`)
  kStopped,   // ended before the end (deadline, signal, --max-failures, superseded); resumable
  kFinished,  // every table rotated to the end
  kFailed,    // ended by an error; resumable
};

// running, stopped, finished, failed.
const char* to_string(RunStatus status);

// The status the runs table's text names. Throws std::invalid_argument on
// any other text (the table's CHECK constraint allows no other).
RunStatus run_status_from(std::string_view text);

}  // namespace rekey::db
