#include "cli/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/unique_fd.h"

namespace rekey {
namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Written by the handler, read after poll() wakes: which signal came, and a
// byte on the self-pipe to wake it.
volatile sig_atomic_t g_signal = 0;
volatile sig_atomic_t g_wake_fd = -1;

extern "C" void on_stop_signal(int signo) {
  g_signal = signo;
  const int saved = errno;
  if (g_wake_fd >= 0) {
    const char byte = 1;
    (void)!::write(g_wake_fd, &byte, 1);
  }
  errno = saved;
}

std::system_error system_error(const char* what) { return {errno, std::generic_category(), what}; }

void open_pipe(UniqueFd& read_end, UniqueFd& write_end, int flags) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC | flags) != 0) throw system_error("pipe");
  read_end.reset(ends[0]);
  write_end.reset(ends[1]);
}

// The stop signals caught onto a self-pipe (but those ignored when it
// begins: under nohup, a SIGHUP stays ignored), and SIGCHLD at its default,
// while this lives; the previous handlers back after. A signal caught but
// not taken (it came after the last look) is raised again once they are
// back, so that it is not lost: it reaches what handled it before.
class SignalCatcher {
 public:
  SignalCatcher() {
    open_pipe(wake_read_, wake_write_, O_NONBLOCK);
    g_signal = 0;
    g_wake_fd = wake_write_.get();
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < std::size(kStopSignals); ++i) {
      ::sigaction(kStopSignals[i], nullptr, &saved_[i]);
      if (saved_[i].sa_handler != SIG_IGN) ::sigaction(kStopSignals[i], &sa, nullptr);
    }
    struct sigaction child {};
    child.sa_handler = SIG_DFL;
    sigemptyset(&child.sa_mask);
    ::sigaction(SIGCHLD, &child, &saved_child_);
  }
  SignalCatcher(const SignalCatcher&) = delete;
  SignalCatcher& operator=(const SignalCatcher&) = delete;
  ~SignalCatcher() {
    sigset_t stops;
    sigemptyset(&stops);
    for (int signo : kStopSignals) sigaddset(&stops, signo);
    sigset_t before;
    ::pthread_sigmask(SIG_BLOCK, &stops, &before);
    for (std::size_t i = 0; i < std::size(kStopSignals); ++i) ::sigaction(kStopSignals[i], &saved_[i], nullptr);
    ::sigaction(SIGCHLD, &saved_child_, nullptr);
    g_wake_fd = -1;
    if (g_signal != 0 && !taken_) ::raise(g_signal);  // pending until unblocked, then handled as before
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  }
  int wake_fd() const { return wake_read_.get(); }
  // The signal caught, if any; taken: the caller acts on it.
  int take() {
    taken_ = taken_ || g_signal != 0;
    return g_signal;
  }

 private:
  UniqueFd wake_read_;
  UniqueFd wake_write_;
  struct sigaction saved_[std::size(kStopSignals)]{};
  struct sigaction saved_child_ {};
  bool taken_ = false;
};

// The processes of session `sid` other than its leader (Linux: /proc/PID/stat
// holds each process's session id).
std::vector<pid_t> session_members(pid_t sid) {
  std::vector<pid_t> out;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 1));
    std::string state;
    long ppid = 0;
    long pgrp = 0;
    long session = 0;
    if (rest >> state >> ppid >> pgrp >> session && session == sid && state != "Z") {
      const pid_t pid = static_cast<pid_t>(std::stol(name));
      if (pid != sid) out.push_back(pid);
    }
  }
  return out;
}

// A child leading a session of its own. Every process of its session is
// killed, and it is reaped, when this goes out of scope, whatever came first:
// its process group at once, then any member that left the group (a job of
// its own, say), until none is left.
class Session {
 public:
  explicit Session(pid_t pid) : pid_(pid) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    ::kill(-pid_, SIGKILL);  // the leader stays a zombie until reaped: its ids stay valid
    for (int round = 0; round < 20; ++round) {
      const std::vector<pid_t> left = session_members(pid_);
      if (left.empty()) break;
      for (pid_t pid : left) ::kill(pid, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  // True once the leader has exited (not yet reaped: see the destructor),
  // with its wait status in `status`.
  bool exited(int& status) const {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) return false;
      throw system_error("waitid");
    }
    if (info.si_pid == 0) return false;
    status = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : info.si_status;
    return true;
  }

 private:
  pid_t pid_;
};

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

pid_t spawn(std::vector<std::string> argv, std::vector<std::string> env, int out) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signo : kStopSignals) sigaddset(&defaults, signo);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGCHLD);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  const std::vector<char*> args = pointers(argv);
  const std::vector<char*> envp = pointers(env);
  const int error = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (error != 0) throw SpawnError(error);
  return pid;
}

// How long a poll waits at most: what a signal or the leader's exit may take to be seen.
constexpr long long kPollMs = 10;

// Milliseconds left until `deadline`, at most kPollMs.
int ms_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, kPollMs));
}

enum class Read { kSome, kNothing, kEnded };

// Reads what there is to read within `wait_ms`. Sets run.end when there is
// too much.
Read read_available(CapturedRun& run, int out, std::size_t& size, std::size_t max_output, int wait_ms) {
  pollfd p{out, POLLIN, 0};
  if (::poll(&p, 1, wait_ms) <= 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) return Read::kNothing;
  const ssize_t n = ::read(out, run.output.data() + size, run.output.size() - size);
  if (n < 0) {
    if (errno == EINTR) return Read::kNothing;
    throw system_error("read");
  }
  size += static_cast<std::size_t>(n);
  if (size > max_output) run.end = CapturedRun::End::kOutputTooLarge;
  return n > 0 ? Read::kSome : Read::kEnded;
}

// Follows the command until it exits (then takes what it printed; a process
// it left behind holding its output is not waited for), the deadline, a
// signal, or too much output.
void follow(CapturedRun& run, const Session& session, int out, SignalCatcher& signals,
            std::chrono::steady_clock::time_point deadline, std::size_t max_output) {
  run.output.resize(max_output + 1);
  std::size_t size = 0;
  bool open = true;
  for (;;) {
    if (const int signo = signals.take(); signo != 0) {
      run.end = CapturedRun::End::kInterrupted;
      run.signal_number = signo;
      break;
    }
    if (session.exited(run.wait_status)) {
      while (open && run.end == CapturedRun::End::kExited &&
             read_available(run, out, size, max_output, 0) == Read::kSome) {
      }
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      run.end = CapturedRun::End::kTimedOut;
      break;
    }
    if (!open) {
      pollfd wake{signals.wake_fd(), POLLIN, 0};
      ::poll(&wake, 1, ms_until(deadline));
      continue;
    }
    open = read_available(run, out, size, max_output, ms_until(deadline)) != Read::kEnded;
    if (run.end != CapturedRun::End::kExited) break;
  }
  run.output.resize(std::min(size, max_output));
}

}  // namespace

CapturedRun run_captured(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         std::chrono::steady_clock::time_point deadline, std::size_t max_output) {
  SignalCatcher signals;
  UniqueFd out_read;
  UniqueFd out_write;
  open_pipe(out_read, out_write, 0);
  CapturedRun run;
  {
    const Session session(spawn(argv, env, out_write.get()));
    out_write.reset();
    follow(run, session, out_read.get(), signals, deadline, max_output);
  }  // its session killed, the leader reaped
  return run;
}

}  // namespace rekey
