#include "cli/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "cli/db_options.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"

namespace rekey {
namespace {

std::string system_reason(int error) { return std::error_code(error, std::generic_category()).message(); }

}  // namespace

AuditLog::AuditLog(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  // O_NONBLOCK: a FIFO planted at the path fails the regular-file check below
  // instead of blocking the open.
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    const int error = errno;
    throw UsageError("--audit-log: cannot open " + path_ + " for appending: " +
                     (error == ELOOP ? "it is a symbolic link, which rekey does not follow" : system_reason(error)));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw UsageError("--audit-log: " + path_ + " is not a regular file");
  }
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

void AuditLog::record(const std::string& event, const nlohmann::json& fields) {
  if (path_.empty()) return;
  nlohmann::json j = fields;
  j["time"] = utc_now();
  j["event"] = event;
  j["user"] = current_user();
  j["host"] = host_name();
  j["pid"] = ::getpid();
  const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd_) != 0) {
    log::error("cannot append to the audit log {}: {}", path_, system_reason(errno));
  }
}

}  // namespace rekey
