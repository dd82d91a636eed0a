// Files rekey writes (report, metrics, emitted config) that nobody can
// redirect and nobody sees half written.
//
// The text goes to a temporary file created beside the target, with a random
// name, O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC and mode 0600 (mkostemp): a link
// planted at a guessable temporary name is never opened, and a file that may
// list primary keys of failed rows is private. The temporary is fsync'ed, then
// renamed over the target: rename() replaces a symbolic link at the target
// rather than following it, so the file written is always the path named. On
// any failure the temporary is removed and the target left as it was.
//
// Not thread-safe: one object per write, used from one thread.
#pragma once

#include <string>
#include <string_view>

namespace rekey {

class AtomicFile {
 public:
  // Creates the temporary in `path`'s directory. Throws std::runtime_error
  // naming the path and the system's reason.
  explicit AtomicFile(std::string path);
  // Removes the temporary unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends `text` to the temporary. Throws std::runtime_error as above.
  void write(std::string_view text);
  // fsyncs, closes and renames the temporary over the target. Throws
  // std::runtime_error as above (the temporary is then removed).
  void commit();

 private:
  // Throws the error of `step` (what failed), with errno's reason.
  [[noreturn]] void fail(const char* step) const;

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `text` to `path` through an AtomicFile. Throws std::runtime_error
// naming `path` and the system's reason.
void write_file_atomically(const std::string& path, std::string_view text);

}  // namespace rekey
