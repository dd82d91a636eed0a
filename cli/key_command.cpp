#include "cli/key_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "common/duration.h"
#include "common/errors.h"
#include "common/log.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX declares it nowhere

namespace rekey {

namespace {

// Splits words as a shell does with no expansion (see command_words).
class WordSplitter {
 public:
  explicit WordSplitter(std::string_view s) : s_(s) {}

  std::vector<std::string> words() {
    std::vector<std::string> out;
    while (i_ < s_.size()) {
      if (is_blank(s_[i_])) {
        ++i_;
        continue;
      }
      out.push_back(word());
    }
    if (out.empty()) throw UsageError("a key command is empty");
    return out;
  }

 private:
  static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n'; }

  std::string word() {
    std::string w;
    while (i_ < s_.size() && !is_blank(s_[i_])) {
      const char c = s_[i_++];
      if (c == '\'') {
        single_quoted(w);
      } else if (c == '"') {
        double_quoted(w);
      } else if (c == '\\') {
        if (i_ < s_.size() && s_[i_] != '\n') w += s_[i_];
        ++i_;
      } else {
        w += c;
      }
    }
    return w;
  }
  void single_quoted(std::string& w) {
    const std::size_t end = s_.find('\'', i_);
    if (end == std::string_view::npos) throw UsageError("a key command has an unterminated ' quote");
    w.append(s_.substr(i_, end - i_));
    i_ = end + 1;
  }
  void double_quoted(std::string& w) {
    for (;;) {
      if (i_ >= s_.size()) throw UsageError("a key command has an unterminated \" quote");
      const char c = s_[i_++];
      if (c == '"') return;
      if (c == '\\' && i_ < s_.size() && std::strchr("\"\\$`\n", s_[i_]) != nullptr) {
        if (s_[i_] != '\n') w += s_[i_];
        ++i_;
        continue;
      }
      w += c;
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::string reason(int error) { return std::error_code(error, std::generic_category()).message(); }

// A child in a process group of its own. Until reaped it is killed, with its
// whole group, when this goes out of scope: no key command outlives a failure.
class ChildGroup {
 public:
  explicit ChildGroup(pid_t pid) : pid_(pid) {}
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;
  ~ChildGroup() {
    if (!reaped_) kill_and_reap();
  }

  void kill_and_reap() {
    ::kill(-pid_, SIGKILL);
    wait_status(0);
  }
  // The wait status once the child has exited, waiting until `deadline`;
  // -1 if it is still running then.
  int wait_until(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const int status = wait_status(WNOHANG);
      if (status != -1 || std::chrono::steady_clock::now() >= deadline) return status;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  int wait_status(int options) {
    int status = 0;
    pid_t got = 0;
    do {
      got = ::waitpid(pid_, &status, options);
    } while (got < 0 && errno == EINTR);
    if (got == 0) return -1;
    reaped_ = true;
    return status;
  }

  pid_t pid_;
  bool reaped_ = false;
};

// A pipe's two ends, each closed at scope end unless released.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  ~Pipe() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
};

// The environment minus `hidden` names, as NAME=value strings.
std::vector<std::string> child_environment(const std::vector<std::string>& hidden) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    if (std::find(hidden.begin(), hidden.end(), name) == hidden.end()) out.emplace_back(entry);
  }
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts argv[0] (PATH search) with stdin /dev/null, stdout `out`, default
// signal dispositions, an empty signal mask and its own process group.
pid_t spawn(std::vector<std::string> argv, std::vector<std::string> env, int out, const std::string& label) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) sigaddset(&defaults, signo);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  const std::vector<char*> args = pointers(argv);
  const std::vector<char*> envp = pointers(env);
  const int error = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (error != 0) throw UsageError(label + " cannot be run: " + reason(error));
  return pid;
}

// Reads `fd` to its end into wiped storage, within `deadline`. Throws
// UsageError naming `label` on a timeout, an interruption or too much output.
crypto::SecretBytes read_output(int fd, std::chrono::steady_clock::time_point deadline, const std::string& label,
                                const std::string& timeout_text) {
  crypto::SecretBytes out(kMaxKeyCommandOutput + 1);
  std::size_t size = 0;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw UsageError(label + " did not finish within " + timeout_text + ": killed");
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
    if (ready < 0 && errno == EINTR) throw UsageError(label + " was interrupted (rekey got a signal): killed");
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd, out.data() + size, out.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UsageError(label + ": its output cannot be read: " + reason(errno));
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
    if (size > kMaxKeyCommandOutput) {
      throw UsageError(fmt::format("{} printed more than {} bytes: a key command prints the key alone", label,
                                   kMaxKeyCommandOutput));
    }
  }
  out.resize(size);
  return out;
}

void check_exit(int status, const std::string& label, const std::string& timeout_text) {
  if (status == -1)
    throw UsageError(label + " did not exit within " + timeout_text + " after its output ended: killed");
  if (WIFSIGNALED(status)) throw UsageError(fmt::format("{} was killed by signal {}", label, WTERMSIG(status)));
  if (WEXITSTATUS(status) != 0) {
    throw UsageError(fmt::format("{} failed (exit {}); its output is not shown", label, WEXITSTATUS(status)));
  }
}

// The key in a command's output: one trailing newline (\n or \r\n) trimmed,
// then one non-empty line.
void trim_to_key(crypto::SecretBytes& out, const std::string& label) {
  if (!out.empty() && out.back() == '\n') out.pop_back();
  if (!out.empty() && out.back() == '\r') out.pop_back();
  if (out.empty()) throw UsageError(label + " printed nothing");
  if (std::find_if(out.begin(), out.end(), [](std::uint8_t c) { return c == '\n' || c == '\r'; }) != out.end()) {
    throw UsageError(label +
                     " printed several lines: a key command prints the key alone (e.g. vault kv get -field=NAME, "
                     "aws … --query Parameter.Value --output text); its output is not shown");
  }
}

}  // namespace

std::vector<std::string> command_words(std::string_view command) { return WordSplitter(command).words(); }

crypto::SecretBytes run_key_command(const std::string& command, const KeyCommandLimits& limits) {
  const std::string label = "key command `" + log::printable(command) + "`";
  const std::string timeout_text =
      format_seconds(std::chrono::duration<double>(limits.timeout).count()) + " (--key-command-timeout)";
  const auto deadline = std::chrono::steady_clock::now() + limits.timeout;
  Pipe pipe;
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw UsageError(label + " cannot be run: " + reason(errno));
  pipe.read_end = ends[0];
  pipe.write_end = ends[1];
  ChildGroup child(spawn(command_words(command), child_environment(limits.hidden_env), pipe.write_end, label));
  ::close(pipe.write_end);
  pipe.write_end = -1;
  crypto::SecretBytes out = read_output(pipe.read_end, deadline, label, timeout_text);
  check_exit(child.wait_until(deadline), label, timeout_text);
  trim_to_key(out, label);
  return out;
}

}  // namespace rekey
