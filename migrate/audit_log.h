// The audit log (--audit-log PATH): one JSON line per event, appended and
// flushed to disk as it happens. Events name the run, the key fingerprints,
// counts and failure reasons, who ran it and from which host; never a key, a
// value or a plaintext.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace rekey {

class AuditLog {
 public:
  // Empty `path` disables. Throws UsageError if the file cannot be opened for
  // appending: an operator who asked for an audit trail must get one.
  explicit AuditLog(std::string path);

  // Appends {"time", "event", "user", "host", "pid", ...fields}. A failed
  // write is logged as an error; it does not stop the run.
  void record(const std::string& event, const nlohmann::json& fields);

 private:
  std::string path_;
};

}  // namespace rekey
