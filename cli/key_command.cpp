#include "cli/key_command.h"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <regex>
#include <system_error>

#include "cli/child_process.h"
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
      } else if (s_[i_] == '\\' && i_ + 1 < s_.size() && s_[i_ + 1] == '\n') {
        i_ += 2;  // a line continued: nothing
      } else {
        out.push_back(word());
      }
    }
    if (out.empty()) throw UsageError("a key command is empty");
    return out;
  }

 private:
  static bool is_blank(char c) { return c == ' ' || c == '\t'; }

  // What a shell would read as an operator, a comment, an expansion or the
  // end of a command, which a command run without one would pass on as an
  // argument: refused.
  [[noreturn]] static void refuse_shell_syntax(char c) {
    throw UsageError(fmt::format(
        "a key command is run without a shell, and an unquoted {} would mean something else to one: quote it, or "
        "write sh -c '...'",
        c == '\n' ? std::string("line break") : "'" + std::string(1, c) + "'"));
  }

  std::string word() {
    std::string w;
    if (s_[i_] == '#') refuse_shell_syntax('#');
    while (i_ < s_.size() && !is_blank(s_[i_])) {
      const char c = s_[i_++];
      if (c == '\'') {
        single_quoted(w);
      } else if (c == '"') {
        double_quoted(w);
      } else if (c == '\\') {
        if (i_ >= s_.size()) {
          w += c;  // a trailing backslash is itself
        } else if (s_[i_] != '\n') {
          w += s_[i_];
        }
        ++i_;
      } else if (std::strchr("|&;<>()`$\n", c) != nullptr) {
        refuse_shell_syntax(c);
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
      if (c == '$' || c == '`') refuse_shell_syntax(c);
      w += c;
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
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

// How it is named when it cannot be started: a path, or nothing (a word
// that is no program may be the first word of a passphrase pasted where the
// command belongs).
std::string unstarted_label(const std::vector<std::string>& words) {
  if (words[0].find('/') != std::string::npos) return key_command_label(words[0] + " ...");
  return fmt::format("the key command (not shown: its first word, {} characters, is no program on PATH; is it a key?)",
                     words[0].size());
}

// Throws UsageError (or Interrupted) unless the run exited 0.
void check_end(const CapturedRun& run, const std::string& label, const std::string& timeout_text) {
  switch (run.end) {
    case CapturedRun::End::kInterrupted:
      throw Interrupted(
          fmt::format("{} was stopped: rekey got signal {} (nothing was changed)", label, run.signal_number));
    case CapturedRun::End::kTimedOut:
      throw UsageError(label + " did not finish within " + timeout_text + ": killed");
    case CapturedRun::End::kOutputTooLarge:
      throw UsageError(fmt::format("{} printed more than {} bytes: a key command prints the key alone", label,
                                   kMaxKeyCommandOutput));
    case CapturedRun::End::kExited:
      break;
  }
  if (WIFSIGNALED(run.wait_status)) {
    throw UsageError(fmt::format("{} was killed by signal {}", label, WTERMSIG(run.wait_status)));
  }
  if (WEXITSTATUS(run.wait_status) != 0) {
    throw UsageError(fmt::format("{} failed (exit {}); its output is not shown", label, WEXITSTATUS(run.wait_status)));
  }
}

// The key in a command's output: one trailing newline (\n or \r\n) trimmed,
// then one non-empty line.
void trim_to_key(crypto::SecretBytes& out, const std::string& label) {
  if (!out.empty() && out.back() == '\n') {
    out.pop_back();
    if (!out.empty() && out.back() == '\r') out.pop_back();
  }
  if (out.empty()) throw UsageError(label + " printed nothing");
  if (std::find_if(out.begin(), out.end(), [](std::uint8_t c) { return c == '\n' || c == '\r'; }) != out.end()) {
    throw UsageError(label +
                     " printed several lines (or a carriage return): a key command prints the key alone (e.g. vault "
                     "kv get -field=NAME, aws ... --query Parameter.Value --output text); its output is not shown");
  }
}

}  // namespace

std::string key_command_label(const std::string& command) { return "key command `" + log::printable(command) + "`"; }

std::vector<std::string> command_words(std::string_view command) {
  // An unquoted NAME= at the start is what a shell reads as an assignment.
  static const std::regex assignment(R"(^[ \t]*[A-Za-z_][A-Za-z0-9_]*=)");
  if (std::regex_search(command.begin(), command.end(), assignment)) {
    throw UsageError(
        "a key command is run without a shell: a leading NAME=value would set a variable in one; "
        "write env NAME=value COMMAND (the command is not shown)");
  }
  return WordSplitter(command).words();
}

crypto::SecretBytes run_key_command(const std::string& command, const KeyCommandLimits& limits) {
  if (limits.timeout < kMinKeyCommandTimeout || limits.timeout > kMaxKeyCommandTimeout) {
    throw UsageError("--key-command-timeout: between 100ms and 1h");
  }
  const std::vector<std::string> words = command_words(command);
  const std::string label = key_command_label(command);
  const std::string timeout_text =
      format_seconds(std::chrono::duration<double>(limits.timeout).count()) + " (--key-command-timeout)";
  CapturedRun run;
  try {
    run = run_captured(words, child_environment(limits.hidden_env), std::chrono::steady_clock::now() + limits.timeout,
                       kMaxKeyCommandOutput);
  } catch (const SpawnError& e) {
    throw UsageError(unstarted_label(words) + " cannot be run: " + e.code().message());
  } catch (const std::system_error& e) {
    throw UsageError(label + " could not be followed: " + e.code().message());
  }
  check_end(run, label, timeout_text);
  trim_to_key(run.output, label);
  return std::move(run.output);
}

}  // namespace rekey
