#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace rekey {
namespace {

// `path`'s directory and a hidden name in it for the temporary, as
// mkostemp() wants it: ".NAME.tmp.XXXXXX".
std::string temp_template(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return dir + "." + name + ".tmp.XXXXXX";
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::string name = temp_template(path_);
  std::vector<char> buffer(name.begin(), name.end());
  buffer.push_back('\0');
  // mkostemp opens O_RDWR|O_CREAT|O_EXCL, mode 0600, plus these flags.
  fd_ = ::mkostemp(buffer.data(), O_CLOEXEC | O_NOFOLLOW);
  if (fd_ < 0) fail("creating a temporary file beside it");
  temp_path_ = buffer.data();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd_, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;
    if (n <= 0) fail("writing");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("fsync");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("closing");
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("renaming the temporary file over it");
  committed_ = true;
}

void AtomicFile::fail(const char* step) const {
  const std::string reason = std::error_code(errno, std::generic_category()).message();
  throw std::runtime_error("cannot write " + path_ + " (" + step + "): " + reason);
}

void write_file_atomically(const std::string& path, std::string_view text) {
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

}  // namespace rekey
