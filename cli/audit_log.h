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
  // Empty `path` disables. Opens the file once, for the life of the object,
  // with O_APPEND|O_CREAT|O_NOFOLLOW (created mode 0600): a symbolic link
  // planted at `path` is refused, never followed. Throws UsageError naming the
  // path and the reason if it cannot be opened, or is not a regular file: an
  // operator who asked for an audit trail must get one.
  explicit AuditLog(std::string path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends {"time", "event", "user", "host", "pid", ...fields} and fsyncs.
  // A failed write is logged as an error; it does not stop the run.
  void record(const std::string& event, const nlohmann::json& fields);

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace rekey
