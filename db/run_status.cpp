#include "db/run_status.h"

#include <stdexcept>
#include <string>

namespace rekey::db {

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kStopped:
      return "stopped";
    case RunStatus::kFinished:
      return "finished";
    case RunStatus::kFailed:
      return "failed";
  }
  return "running";
}

RunStatus run_status_from(std::string_view text) {
  for (RunStatus s : {RunStatus::kRunning, RunStatus::kStopped, RunStatus::kFinished, RunStatus::kFailed}) {
    if (text == to_string(s)) return s;
  }
  throw std::invalid_argument("unknown run status '" + std::string(text) + "'");
}

}  // namespace rekey::db
