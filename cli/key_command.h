// Keys from a secret store's command-line tool (--new-key-command,
// --old-key-command): `aws ssm get-parameter …`, `vault kv get -field=…`,
// `op read …`. The command's text is not secret and may be logged; its
// output is a key: held in wiped storage only, never printed, never logged.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secret_bytes.h"

namespace rekey {

// The words of `command` as a POSIX shell splits a simple command, with no
// expansion at all: blanks separate words; '…' keeps its text verbatim;
// "…" keeps its text but for the escapes \" \\ \$ \` (and a backslash before a
// newline, which joins lines, as it does outside quotes); a backslash outside
// quotes keeps the next character (a trailing one is itself). What a shell
// would read otherwise is refused rather than passed on as an argument: an
// unquoted | & ; < > ( ) $ ` or line break, a word starting with #, $ or `
// in double quotes, and a leading NAME=value (env NAME=value COMMAND sets
// one). A shell runs only when the operator writes one (`sh -c '…'`).
// Throws UsageError on those, an unterminated quote or an empty command.
// Pure.
std::vector<std::string> command_words(std::string_view command);

// How a key command is named in messages (and key labels): its text,
// escaped. Never its output.
std::string key_command_label(const std::string& command);

// How a key command runs: its time limit and the environment variables its
// process must not inherit (the names keys and passwords are read from).
struct KeyCommandLimits {
  std::chrono::milliseconds timeout{30000};
  std::vector<std::string> hidden_env;
};

// The time a key command may be given (--key-command-timeout).
constexpr std::chrono::milliseconds kMinKeyCommandTimeout{100};
constexpr std::chrono::milliseconds kMaxKeyCommandTimeout{3600 * 1000};

// The largest output a key command may print: a key is short; more is a
// mistake (a whole secret listing, a JSON document) and is refused.
constexpr std::size_t kMaxKeyCommandOutput = 64 * 1024;

// Runs `command` (its command_words, found on PATH; no shell) as
// run_captured does (child_process.h: a session of its own, no terminal,
// stdin /dev/null, stderr passed through, every process of it killed at the
// end) and returns its standard output minus one trailing newline ("\n" or
// "\r\n"), in wiped storage.
// Throws UsageError (exit 2) naming the command, never its output (nor,
// when it cannot start, any word that may be a pasted key), when the
// timeout is outside kMinKeyCommandTimeout..kMaxKeyCommandTimeout, or the
// command cannot start, exits non-zero or by a signal, prints nothing,
// several lines, a carriage return or more than kMaxKeyCommandOutput bytes,
// or is not done within `limits.timeout`; Interrupted (exit 75) when rekey
// gets SIGINT, SIGTERM, SIGHUP or SIGQUIT meanwhile.
crypto::SecretBytes run_key_command(const std::string& command, const KeyCommandLimits& limits);

}  // namespace rekey
