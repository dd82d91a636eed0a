#include "migrate/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "migrate/db_options.h"
#include "migrate/errors.h"
#include "migrate/log.h"

namespace rekey {
namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

}  // namespace

AuditLog::AuditLog(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw UsageError("--audit-log: cannot open " + path_ + " for appending");
  ::close(fd);
}

void AuditLog::record(const std::string& event, const nlohmann::json& fields) {
  if (path_.empty()) return;
  nlohmann::json j = fields;
  j["time"] = utc_now();
  j["event"] = event;
  j["user"] = current_user();
  j["host"] = host_name();
  j["pid"] = ::getpid();
  if (!append_line(path_, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n")) {
    log::error("cannot append to the audit log {}", path_);
  }
}

}  // namespace rekey
