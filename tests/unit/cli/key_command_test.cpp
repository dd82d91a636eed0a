// Key commands (cli/key_command.h): words split as a shell would, no shell
// run; the output is the key, and every failure names the command, never
// the output, and leaves no process behind.
#include "cli/key_command.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "tests/support/it_support.h"

using namespace rekey::it;

namespace {

// `word` quoted for a POSIX shell by one of three styles picked by `style`.
std::string shell_quoted(const std::string& word, unsigned style) {
  std::string out;
  if (style % 3 == 0) {  // single quotes, a quote itself as '\''
    out = "'";
    for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }
  if (style % 3 == 1) {  // double quotes, escaping what is special inside them
    out = "\"";
    for (char c : word) out += std::string(c == '"' || c == '\\' || c == '$' || c == '`' ? "\\" : "") + c;
    return out + "\"";
  }
  // every character escaped, but a newline (a backslash before one joins lines)
  for (char c : word) out += c == '\n' ? std::string("'\n'") : std::string("\\") + c;
  return word.empty() ? "''" : out;
}

std::string text(const rekey::crypto::SecretBytes& b) { return std::string(b.begin(), b.end()); }

rekey::KeyCommandLimits limits(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  rekey::KeyCommandLimits l;
  l.timeout = timeout;
  l.hidden_env = {"REKEY_TEST_HIDDEN"};
  return l;
}

// A stand-in tool: an executable sh script in `dir`.
std::string tool(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.file(name);
  write_file(path, "#!/bin/sh\n" + body);
  REQUIRE(::chmod(path.c_str(), 0700) == 0);
  return path;
}

extern "C" void on_test_signal(int /*signo*/) {}

// True while `pid` runs (a zombie does not: PID 1 may never reap it here).
bool alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || stat.compare(paren + 2, 1, "Z") != 0;
}

// The pid in the first line of `path`.
pid_t pid_in(const std::string& path) {
  std::istringstream in(read_file(path));
  pid_t pid = 0;
  in >> pid;
  REQUIRE(pid > 0);
  return pid;
}

// The message of the UsageError `command` throws.
std::string failure(const std::string& command, const rekey::KeyCommandLimits& l = limits()) {
  try {
    rekey::run_key_command(command, l);
  } catch (const rekey::UsageError& e) {
    return e.what();
  }
  FAIL("the key command succeeded: " << command);
  return {};
}

}  // namespace

TEST_SUITE("cli.key_command") {
  TEST_CASE("random words, quoted any way a shell allows, split back into the same words") {
    std::mt19937 rng(20261130);
    const std::string alphabet = "ab Z09 \t'\"\\$`*?;|&<>(){}#~=%\n-_./:";
    for (int round = 0; round < 2000; ++round) {
      std::vector<std::string> words(1 + rng() % 5);
      std::string command;
      for (auto& w : words) {
        const std::size_t length = rng() % 8;
        for (std::size_t i = 0; i < length; ++i) w += alphabet[rng() % alphabet.size()];
        command += (command.empty() ? "" : std::string(1 + rng() % 2, rng() % 2 ? ' ' : '\t')) + shell_quoted(w, rng());
      }
      if (words.size() == 1 && words[0].empty()) continue;
      REQUIRE_MESSAGE(rekey::command_words(command) == words, command);
    }
  }

  TEST_CASE("words: nothing is expanded, and a bad quote or an empty command is refused") {
    using V = std::vector<std::string>;
    CHECK(rekey::command_words("aws ssm get-parameter --name /prod/KEY --query Parameter.Value") ==
          V{"aws", "ssm", "get-parameter", "--name", "/prod/KEY", "--query", "Parameter.Value"});
    CHECK(rekey::command_words("sh -c 'vault kv get -field=key secret/app | tr -d x'") ==
          V{"sh", "-c", "vault kv get -field=key secret/app | tr -d x"});
    CHECK(rekey::command_words("echo \\$HOME '$X' \"\\$Y\" ~ *.key \"a\\nb\" a\\\nb") ==
          V{"echo", "$HOME", "$X", "$Y", "~", "*.key", "a\\nb", "ab"});
    // A line continued, as a multi-line command is written; a trailing backslash is itself.
    CHECK(rekey::command_words("aws \\\n  ssm get-parameter \\\n--name x") ==
          V{"aws", "ssm", "get-parameter", "--name", "x"});
    CHECK(rekey::command_words("a b\\") == V{"a", "b\\"});
    // What a shell would read as an operator, a comment or an expansion is refused, not passed on.
    for (const char* shell : {"op read x | jq .", "a; b", "a && b", "a > f", "a 2>/dev/null", "a < f", "a # comment",
                              "a $X", "a \"$X\"", "a $(b)", "a `b`", "a \"`b`\"", "(a)", "a\nb", "a &"}) {
      CAPTURE(shell);
      CHECK_THROWS_WITH_AS(rekey::command_words(shell), doctest::Contains("write sh -c"), rekey::UsageError);
    }
    CHECK_THROWS_WITH_AS(rekey::command_words("op read 'op://vault/item"), doctest::Contains("unterminated '"),
                         rekey::UsageError);
    CHECK_THROWS_WITH_AS(rekey::command_words("op read \"x"), doctest::Contains("unterminated \""), rekey::UsageError);
    CHECK_THROWS_WITH_AS(rekey::command_words(" \t "), doctest::Contains("empty"), rekey::UsageError);
  }

  TEST_CASE("the output is the key: one trailing newline or CRLF trimmed, nothing else") {
    TempDir dir;
    CHECK(text(rekey::run_key_command(tool(dir, "lf", "printf 'k e y \\n'"), limits())) == "k e y ");
    CHECK(text(rekey::run_key_command(tool(dir, "crlf", "printf 'key\\r\\n'"), limits())) == "key");
    CHECK(contains(failure(tool(dir, "cr", "printf 'key\\r'")), "carriage return"));
    CHECK(text(rekey::run_key_command(tool(dir, "bare", "printf key"), limits())) == "key");
    // stdin is /dev/null: a tool that reads it ends at once.
    CHECK(text(rekey::run_key_command(tool(dir, "stdin", "cat; printf key"), limits())) == "key");
  }

  TEST_CASE("a failing, silent, chatty or absent command is refused, naming it and never showing its output") {
    TempDir dir;
    const std::string secret = "SECRETSECRETSECRET";
    std::string m = failure(tool(dir, "fails", "printf " + secret + "; echo 'denied' >&2; exit 3"));
    CHECK(contains(m, "fails`"));
    CHECK(contains(m, "exit 3"));
    CHECK_FALSE(contains(m, secret));
    CHECK(contains(failure(tool(dir, "silent", "exit 0")), "printed nothing"));
    CHECK(contains(failure(tool(dir, "newline", "echo")), "printed nothing"));
    m = failure(tool(dir, "lines", "printf '" + secret + "\\nsecond\\n'"));
    CHECK(contains(m, "several lines"));
    CHECK_FALSE(contains(m, secret));
    CHECK(contains(failure(tool(dir, "blank", "printf 'key\\n\\n'")), "several lines"));
    CHECK(contains(failure(tool(dir, "huge", "head -c 70000 /dev/zero | tr '\\0' k")), "more than 65536 bytes"));
    CHECK(contains(failure(tool(dir, "killed", "kill -9 $$")), "killed by signal 9"));
    CHECK(contains(failure(dir.file("absent")), "cannot be run"));
  }

  TEST_CASE("a hanging command is killed with every process it started, at the timeout") {
    TempDir dir;
    const std::string pids = dir.file("pids");
    // The tool starts a child that would outlive it, then hangs itself.
    const std::string hang = tool(dir, "hang", "sleep 60 & echo $! >" + pids + "; echo $$ >>" + pids + "; sleep 60\n");
    const auto start = std::chrono::steady_clock::now();
    CHECK(contains(failure(hang, limits(std::chrono::milliseconds(500))), "did not finish within 0.5s"));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    std::istringstream in(read_file(pids));
    int count = 0;
    for (pid_t pid = 0; in >> pid; ++count) {
      CHECK_MESSAGE(wait_until([pid] { return !alive(pid); }, std::chrono::seconds(5)), "pid ", pid);
    }
    CHECK(count == 2);
    // Output, then a command that does not exit: killed at the timeout too.
    const std::string lingers = tool(dir, "lingers", "printf key; exec >&-; sleep 60\n");
    CHECK(contains(failure(lingers, limits(std::chrono::milliseconds(500))), "did not finish within"));
  }

  TEST_CASE("every process a key command started is killed when it ends, whichever way") {
    TempDir dir;
    const std::string pids = dir.file("pids");
    const auto left_behind = [&] {
      const pid_t pid = pid_in(pids);
      return !wait_until([pid] { return !alive(pid); }, std::chrono::seconds(5));
    };
    CHECK(contains(failure(tool(dir, "fails", "sleep 60 & echo $! >" + pids + "; exit 3")), "exit 3"));
    CHECK_FALSE(left_behind());
    CHECK(text(rekey::run_key_command(tool(dir, "ok", "sleep 60 & echo $! >" + pids + "; printf key"), limits())) ==
          "key");
    CHECK_FALSE(left_behind());
    // A job in a process group of its own (job control), still in the session: killed too.
    CHECK(text(rekey::run_key_command(tool(dir, "job", "set -m; sleep 60 & echo $! >" + pids + "; printf key"),
                                      limits())) == "key");
    CHECK_FALSE(left_behind());
  }

  TEST_CASE("a key command leads a session of its own (no terminal), and its exit is seen with SIGCHLD ignored") {
    TempDir dir;
    const std::string ids =
        text(rekey::run_key_command(tool(dir, "sid", "printf '%s %s' $$ $(cut -d' ' -f6 /proc/$$/stat)"), limits()));
    std::istringstream in(ids);
    long pid = 0;
    long sid = 0;
    in >> pid >> sid;
    CHECK(pid > 0);
    CHECK(sid == pid);
    CHECK(sid != ::getsid(0));
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction saved {};
    REQUIRE(::sigaction(SIGCHLD, &ignore, &saved) == 0);
    const std::string m = failure(tool(dir, "fails", "printf key; exit 3"));
    ::sigaction(SIGCHLD, &saved, nullptr);
    CHECK(contains(m, "exit 3"));
  }

  TEST_CASE("a signal ignored when a key command starts stays ignored (nohup)") {
    TempDir dir;
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction saved {};
    REQUIRE(::sigaction(SIGHUP, &ignore, &saved) == 0);
    const std::string key =
        text(rekey::run_key_command(tool(dir, "hup", "kill -HUP $PPID; sleep 0.2; printf key"), limits()));
    ::sigaction(SIGHUP, &saved, nullptr);
    CHECK(key == "key");
  }

  TEST_CASE("a signal to rekey while a key command runs kills it and stops (Interrupted), the handlers restored") {
    TempDir dir;
    const std::string pids = dir.file("pids");
    const std::string waits = tool(dir, "waits", "echo $$ >" + pids + "; kill -TERM $PPID; sleep 60\n");
    struct sigaction mine {};
    mine.sa_handler = on_test_signal;  // what was there before must be there after
    struct sigaction saved {};
    REQUIRE(::sigaction(SIGTERM, &mine, &saved) == 0);
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(rekey::run_key_command(waits, limits()), doctest::Contains("rekey got signal 15"),
                         rekey::Interrupted);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    struct sigaction after {};
    ::sigaction(SIGTERM, &saved, &after);
    CHECK(reinterpret_cast<std::uintptr_t>(after.sa_handler) == reinterpret_cast<std::uintptr_t>(&on_test_signal));
    const pid_t pid = pid_in(pids);
    CHECK(wait_until([pid] { return !alive(pid); }, std::chrono::seconds(5)));
  }

  TEST_CASE("a pasted key given as the command is never shown; the timeout has bounds") {
    for (const std::string pasted :
         {"HhKZf0kUhh2IbUVrjqfWm4Jc4KlEONWgsQKZ3CUh1lc=", "tr0ub4dor horse battery staple"}) {
      const std::string m = failure(pasted);
      CHECK_FALSE(contains(m, pasted.substr(0, 6)));
      CHECK_FALSE(contains(m, "horse"));
    }
    CHECK(contains(failure("tr0ub4dor horse battery staple"), "cannot be run"));
    CHECK_THROWS_WITH_AS(rekey::command_words("AWS_PROFILE=prod aws ssm get-parameter"),
                         doctest::Contains("env NAME=value COMMAND"), rekey::UsageError);
    CHECK(contains(failure("/bin/true", limits(std::chrono::milliseconds(50))), "between 100ms and 1h"));
    CHECK(contains(failure("/bin/true", limits(std::chrono::hours(2))), "between 100ms and 1h"));
  }

  TEST_CASE("the command inherits the environment but for the hidden names") {
    TempDir dir;
    REQUIRE(::setenv("REKEY_TEST_HIDDEN", "hidden-value", 1) == 0);
    REQUIRE(::setenv("REKEY_TEST_SHOWN", "shown", 1) == 0);
    const std::string env = tool(dir, "env", "printf '%s/%s' \"${REKEY_TEST_HIDDEN:-unset}\" \"$REKEY_TEST_SHOWN\"");
    CHECK(text(rekey::run_key_command(env, limits())) == "unset/shown");
    ::unsetenv("REKEY_TEST_HIDDEN");
    ::unsetenv("REKEY_TEST_SHOWN");
  }
}
