// Wall-clock time as rekey writes it in logs and the audit log.
#pragma once

#include <string>

namespace rekey {

// Now, in UTC, to the second: 2024-05-01T12:34:56Z. Thread-safe.
std::string utc_now();

}  // namespace rekey
