// A command run for its output, the way a secret must be fetched: in a
// session of its own (no controlling terminal, so a tool that would prompt
// fails at once instead of hanging or echoing what is typed), standard input
// /dev/null, standard error passed through, standard output read straight
// into wiped storage. Every process of its session is killed before
// run_captured returns, whatever the way it ends (one that starts a session
// of its own, as sudo's use_pty does, is out of reach).
//
// Not thread-safe: run one at a time, from one thread. While it runs it
// holds the process's handlers of SIGINT, SIGTERM, SIGHUP and SIGQUIT (a
// signal ends the run, see CapturedRun::End::kInterrupted) and SIGCHLD's
// default disposition (an ignored SIGCHLD would hide the exit status);
// it restores them before returning (a signal ignored when it begins stays
// ignored; one that came too late to end the run is raised again then).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

#include "crypto/secret_bytes.h"

namespace rekey {

// The command could not be started (not found, not executable).
class SpawnError : public std::system_error {
 public:
  explicit SpawnError(int error) : std::system_error(error, std::generic_category(), "spawn") {}
};

struct CapturedRun {
  enum class End {
    kExited,          // the command exited (wait_status) and its output ended
    kTimedOut,        // the deadline came first
    kOutputTooLarge,  // it printed more than the limit
    kInterrupted,     // rekey got a signal (signal_number)
  };
  End end = End::kExited;
  int wait_status = 0;    // kExited: as waitpid reports it
  int signal_number = 0;  // kInterrupted
  crypto::SecretBytes output;
};

// Runs argv[0] (found on PATH) with `argv` and the environment `env`
// (NAME=value strings) until `deadline`, keeping at most `max_output` bytes
// of what it prints. Throws SpawnError when it cannot be started, and
// std::system_error when following it fails.
CapturedRun run_captured(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         std::chrono::steady_clock::time_point deadline, std::size_t max_output);

}  // namespace rekey
