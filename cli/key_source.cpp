#include "cli/key_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>

#include "cli/cli_choices.h"
#include "cli/key_command.h"
#include "common/duration.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/unique_fd.h"

namespace rekey {

void add_key_options(CLI::App& app, KeyOptions& o) {
  app.add_option("--new-key-env", o.new_key_env, "Environment variable holding the new key")
      ->capture_default_str()
      ->each([&o](const std::string& /*name*/) { o.new_key_env_given = true; });
  app.add_option("--new-key-file", o.new_key_file, "File holding the new key (instead of --new-key-env)");
  app.add_option("--old-key-env", o.old_key_envs,
                 "Environment variable holding an old key (repeatable; default OLD_ENCRYPTION_KEY)");
  app.add_option("--old-key-file", o.old_key_files, "File holding an old key (repeatable)");
  app.add_option("--new-key-command", o.new_key_command,
                 "Command printing the new key, e.g. a secret store's CLI (no shell unless you write sh -c)");
  app.add_option("--old-key-command", o.old_key_commands, "Command printing an old key (repeatable, in order)");
  app.add_option("--key-command-timeout", o.key_command_timeout, "Time a key command may take (e.g. 30s)")
      ->capture_default_str();
  app.add_option("--key-name", o.key_name, "The variable a key file in .env form is read by")->capture_default_str();
  add_readable_key_file_flag(app, o.readable_files);
  app.add_option("--key-format", o.format, "passphrase (PBKDF2, as the service) or fernet (Fernet.generate_key())")
      ->transform(choices(std::map<std::string, crypto::KeyFormat>{{"passphrase", crypto::KeyFormat::kPassphrase},
                                                                   {"fernet", crypto::KeyFormat::kFernet}}))
      ->default_str("passphrase");
  app.add_option("--kdf-iterations", o.kdf.iterations, "PBKDF2 iterations")
      ->check(CLI::Range(1u, 100000000u))
      ->capture_default_str();
  app.add_option("--kdf-salt", o.kdf.salt, "PBKDF2 salt")->capture_default_str();
}

bool is_env_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

void add_readable_key_file_flag(CLI::App& app, ReadableKeyFile& readable) {
  app.add_flag_function(
      "--allow-readable-key-file", [&readable](std::int64_t) { readable = ReadableKeyFile::kAllow; },
      "Use a key file that group or others may access (warns; default: refused)");
}

namespace {

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::string_view unquoted(std::string_view s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
    return s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

KeyText read_key_from_env(const std::string& name) {
  if (!is_env_name(name)) {
    // Most likely a key pasted where its variable's name belongs: never shown.
    throw UsageError(
        "--new-key-env and --old-key-env take the NAME of an environment variable (letters, digits, "
        "_), not a key; the value given is not shown");
  }
  char* value = std::getenv(name.c_str());
  KeyText key{"environment variable " + name, {}};
  if (value == nullptr || *value == '\0') throw UsageError(key.label + " is not set or empty");
  const std::size_t size = std::char_traits<char>::length(value);
  key.text.assign(value, value + size);
  // Read once, then gone: wiped where the process's environment holds it
  // (also what /proc shows of it) and removed, so no child inherits it.
  crypto::wipe(value, size);
  ::unsetenv(name.c_str());
  return key;
}

crypto::SecretBytes key_in_file_text(const crypto::SecretBytes& text, const std::string& key_name,
                                     const std::string& label) {
  const std::string_view all(reinterpret_cast<const char*>(text.data()), text.size());
  std::size_t lines = 0;
  bool env_form = false;
  std::optional<std::string_view> value;
  for (std::size_t from = 0; from <= all.size();) {
    std::size_t end = all.find('\n', from);
    if (end == std::string_view::npos) end = all.size();
    std::string_view line = trimmed(all.substr(from, end - from));
    from = end + 1;
    if (line.empty() || line.front() == '#') continue;
    ++lines;
    if (line.rfind("export ", 0) == 0) line = trimmed(line.substr(7));
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || !is_env_name(trimmed(line.substr(0, eq)))) continue;
    env_form = true;
    if (trimmed(line.substr(0, eq)) == key_name) value = unquoted(trimmed(line.substr(eq + 1)));
  }
  if (value) return crypto::SecretBytes(value->begin(), value->end());
  if (env_form) {
    throw UsageError(label + " is in .env form (NAME=value lines) but has no " + key_name +
                     "= line; name the variable with --key-name");
  }
  if (lines > 1) throw UsageError(label + " has several lines: a key file holds one key, or is in .env form");
  return text;
}

namespace {

std::string system_reason(int error) { return std::error_code(error, std::generic_category()).message(); }

// Refuses (or, allowed, warns about) a key file group or others may access.
void check_private(const std::string& path, const std::string& label, mode_t mode, ReadableKeyFile readable) {
  if ((mode & (S_IRWXG | S_IRWXO)) == 0) return;
  const std::string why = fmt::format("{} is accessible by group or others (mode {:04o})", label, mode & 07777);
  if (readable == ReadableKeyFile::kRefuse) {
    throw UsageError(why + ": chmod 600 " + path + ", or pass --allow-readable-key-file");
  }
  log::warn("{}; used because of --allow-readable-key-file: chmod 600 it", why);
}

// All of `fd`'s bytes, read straight into wiped storage (no stream buffer).
crypto::SecretBytes read_all(int fd, const std::string& label) {
  crypto::SecretBytes text;
  std::size_t size = 0;
  for (;;) {
    if (text.size() - size < 4096) text.resize(text.size() + 4096);
    const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw UsageError(label + " cannot be read: " + system_reason(errno));
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  text.resize(size);
  return text;
}

}  // namespace

KeyText read_key_from_file(const std::string& path, const std::string& key_name, ReadableKeyFile readable) {
  KeyText key{"key file " + path, {}};
  // One open, then everything judged on the descriptor: no window in which
  // the path could be swapped between the check and the read. O_NONBLOCK: a
  // FIFO fails the regular-file check instead of blocking.
  const UniqueFd file(::open(path.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (file.get() < 0) throw UsageError(key.label + " cannot be read: " + system_reason(errno));
  struct stat st {};
  if (::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode)) throw UsageError(key.label + " is not a regular file");
  check_private(path, key.label, st.st_mode, readable);
  key.text = read_all(file.get(), key.label);
  // A trailing newline is how editors and `echo` write files; it is not key material.
  while (!key.text.empty() && (key.text.back() == '\n' || key.text.back() == '\r')) key.text.pop_back();
  key.text = key_in_file_text(key.text, key_name, key.label);
  if (key.text.empty()) throw UsageError(key.label + " is empty");
  return key;
}

KeyText read_key_from_command(const std::string& command, const KeyOptions& o) {
  KeyCommandLimits limits;
  limits.timeout = parse_duration(o.key_command_timeout, "--key-command-timeout");
  // Whatever names keys and passwords are read from, read or not: a secret
  // store's CLI needs its own credentials, never these.
  limits.hidden_env = {"NEW_ENCRYPTION_KEY", "OLD_ENCRYPTION_KEY", "ENCRYPTION_KEY", "SECRET_KEY",
                       "PGPASSWORD",         "DATABASE_URL",       o.new_key_env};
  limits.hidden_env.insert(limits.hidden_env.end(), o.old_key_envs.begin(), o.old_key_envs.end());
  limits.hidden_env.insert(limits.hidden_env.end(), o.hidden_env.begin(), o.hidden_env.end());
  KeyText key{key_command_label(command), {}};
  key.text = run_key_command(command, limits);
  return key;
}

crypto::SecretBytes derive_key(const KeyText& key, KeyRole role, crypto::KeyFormat format, const crypto::KdfParams& kdf,
                               std::size_t min_chars) {
  if (format == crypto::KeyFormat::kFernet) {
    crypto::SecretBytes raw;
    const std::string_view text(reinterpret_cast<const char*>(key.text.data()), key.text.size());
    if (!crypto::decode_fernet_key(text, raw)) {
      throw UsageError(key.label + " is not a Fernet key (url-safe base64 of 32 bytes)");
    }
    return raw;
  }
  if (key.text.size() < min_chars) {
    const std::string why =
        fmt::format("{} is too short: {} characters, at least {} required", key.label, key.text.size(), min_chars);
    if (role == KeyRole::kNew) throw UsageError(why);
    log::warn("{} (used anyway: it is an old key the data may be under)", why);
  }
  return crypto::derive_passphrase_key(key.text, kdf);
}

namespace {

// The new key's text, from the one source `o` names.
KeyText read_new_key(const KeyOptions& o, const std::function<KeyText(const std::string&)>& from_env) {
  if (!o.new_key_file.empty() && !o.new_key_command.empty()) {
    throw UsageError("--new-key-file and --new-key-command both name the new key: give one");
  }
  if (o.new_key_env_given && (!o.new_key_file.empty() || !o.new_key_command.empty())) {
    throw UsageError("--new-key-env and --new-key-file or --new-key-command both name the new key: give one");
  }
  if (!o.new_key_command.empty()) return read_key_from_command(o.new_key_command, o);
  if (!o.new_key_file.empty()) return read_key_from_file(o.new_key_file, o.key_name, o.readable_files);
  return from_env(o.new_key_env);
}

// The old keys' texts: variables, files, then commands, each in order;
// OLD_ENCRYPTION_KEY when none is named.
std::vector<KeyText> read_old_keys(const KeyOptions& o, OldKeyPolicy policy,
                                   const std::function<KeyText(const std::string&)>& from_env) {
  std::vector<KeyText> texts;
  for (const auto& env : o.old_key_envs) texts.push_back(from_env(env));
  for (const auto& file : o.old_key_files) texts.push_back(read_key_from_file(file, o.key_name, o.readable_files));
  for (const auto& command : o.old_key_commands) texts.push_back(read_key_from_command(command, o));
  if (!texts.empty()) return texts;
  const char* fallback = std::getenv("OLD_ENCRYPTION_KEY");
  if (fallback != nullptr && *fallback != '\0') {
    texts.push_back(from_env("OLD_ENCRYPTION_KEY"));
  } else if (policy == OldKeyPolicy::kRequired) {
    throw UsageError(
        "no old key: set OLD_ENCRYPTION_KEY, or name one with --old-key-env, --old-key-file or --old-key-command");
  }
  return texts;
}

}  // namespace

std::unique_ptr<crypto::Keyring> load_keyring(const KeyOptions& o, OldKeyPolicy policy, KeyOrder order,
                                              KeySources* sources) {
  // A variable is read once (reading wipes it); a name given twice gets the same text.
  std::map<std::string, KeyText> read_envs;
  const auto from_env = [&read_envs](const std::string& name) {
    auto it = read_envs.find(name);
    if (it == read_envs.end()) it = read_envs.emplace(name, read_key_from_env(name)).first;
    return it->second;
  };
  const KeyText new_text = read_new_key(o, from_env);
  const crypto::SecretBytes new_raw = derive_key(new_text, KeyRole::kNew, o.format, o.kdf);

  std::vector<std::unique_ptr<const crypto::Fernet>> old_keys;
  KeySources labels{new_text.label, {}};
  for (const auto& text : read_old_keys(o, policy, from_env)) {
    labels.old_keys.push_back(text.label);
    // A rollback makes the first old key the one values are written under: judged as a new key.
    const KeyRole role = order == KeyOrder::kRollback && old_keys.empty() ? KeyRole::kNew : KeyRole::kOld;
    const crypto::SecretBytes raw = derive_key(text, role, o.format, o.kdf);
    if (crypto::ByteView(raw).equals(crypto::ByteView(new_raw))) {
      throw UsageError(text.label + " is the same key as the new key (" + new_text.label + ")");
    }
    old_keys.push_back(crypto::Fernet::create(raw));
  }
  auto new_key = crypto::Fernet::create(new_raw);
  if (order == KeyOrder::kRollback && !old_keys.empty()) {
    std::swap(new_key, old_keys.front());
    std::swap(labels.new_key, labels.old_keys.front());
  }
  if (sources != nullptr) *sources = std::move(labels);
  return std::make_unique<crypto::Keyring>(std::move(new_key), std::move(old_keys));
}

}  // namespace rekey
