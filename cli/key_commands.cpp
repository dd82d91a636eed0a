#include "cli/key_commands.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <memory>

#include "cli/cli_choices.h"
#include "cli/key_source.h"
#include "common/errors.h"
#include "common/log.h"
#include "crypto/fernet.h"

namespace rekey {
namespace {

enum class OutputFormat { kEnv, kJson };
enum class KeyKind { kEncryption, kSecret };

struct KeygenOptions {
  OutputFormat format = OutputFormat::kEnv;
  bool fernet = false;
};

// Appends each piece to `out`, wiped storage, with no copy of a key anywhere else.
void append(crypto::SecretBytes& out, std::initializer_list<crypto::ByteView> pieces) {
  for (const crypto::ByteView& p : pieces) out.insert(out.end(), p.data, p.data + p.size);
}

// The generated keys as keygen prints them. Generated keys are url-safe
// base64, so they need no escaping in JSON.
crypto::SecretBytes keygen_text(const KeygenOptions& o) {
  crypto::SecretBytes out;
  if (o.fernet) {
    const crypto::SecretBytes key = crypto::generate_fernet_key();
    if (o.format == OutputFormat::kJson) {
      append(out, {std::string_view("{\"FERNET_KEY\":\""), key, std::string_view("\"}\n")});
    } else {
      append(out, {key, std::string_view("\n")});
    }
    return out;
  }
  const crypto::SecretBytes secret = crypto::generate_passphrase(96);
  const crypto::SecretBytes encryption = crypto::generate_passphrase(64);
  if (o.format == OutputFormat::kJson) {
    append(out, {std::string_view("{\"ENCRYPTION_KEY\":\""), encryption, std::string_view("\",\"SECRET_KEY\":\""),
                 secret, std::string_view("\"}\n")});
  } else {
    append(out, {std::string_view("SECRET_KEY="), secret, std::string_view("\nENCRYPTION_KEY="), encryption,
                 std::string_view("\n")});
  }
  return out;
}

// Writes all of `bytes` to standard output with write(2): no stdio buffer
// keeps a copy.
bool write_stdout(crypto::ByteView bytes) {
  std::size_t done = 0;
  while (done < bytes.size) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data + done, bytes.size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Writes secrets to stdout only, from wiped storage.
int run_keygen(const KeygenOptions& o) {
  if (!write_stdout(keygen_text(o))) {
    log::error("cannot write the generated key to standard output");
    return to_int(ExitCode::kFailure);
  }
  return to_int(ExitCode::kOk);
}

struct CheckKeyOptions {
  std::string key_env = "ENCRYPTION_KEY";
  bool key_env_given = false;
  std::string key_file;
  std::string key_command;
  std::string key_command_timeout = "30s";
  ReadableKeyFile readable = ReadableKeyFile::kRefuse;
  KeyKind kind = KeyKind::kEncryption;
  crypto::KeyFormat format = crypto::KeyFormat::kPassphrase;
  crypto::KdfParams kdf;
};

KeyText read_checked_key(const CheckKeyOptions& o) {
  const int sources = (o.key_file.empty() ? 0 : 1) + (o.key_command.empty() ? 0 : 1) + (o.key_env_given ? 1 : 0);
  if (sources > 1) throw UsageError("--key-env, --key-file and --key-command each name the key: give one");
  if (!o.key_file.empty()) return read_key_from_file(o.key_file, "ENCRYPTION_KEY", o.readable);
  if (o.key_command.empty()) return read_key_from_env(o.key_env);
  KeyOptions command_options;
  command_options.new_key_env = o.key_env;
  command_options.key_command_timeout = o.key_command_timeout;
  return read_key_from_command(o.key_command, command_options);
}

int run_check_key(const CheckKeyOptions& o) {
  const KeyText text = read_checked_key(o);
  const std::size_t min_chars =
      o.kind == KeyKind::kSecret ? crypto::kMinSecretKeyChars : crypto::kMinEncryptionKeyChars;
  if (o.kind == KeyKind::kSecret) {
    if (text.text.size() < min_chars) {
      throw UsageError(
          fmt::format("{} is too short: {} characters, at least {} required", text.label, text.text.size(), min_chars));
    }
    std::printf("%s: ok, a %zu-character secret\n", text.label.c_str(), text.text.size());
    return to_int(ExitCode::kOk);
  }
  const crypto::SecretBytes raw = derive_key(text, KeyRole::kNew, o.format, o.kdf, min_chars);
  const auto fernet = crypto::Fernet::create(raw);
  static constexpr char kProbe[] = "rekey check-key probe";
  const std::string token = fernet->encrypt(std::string_view(kProbe), static_cast<std::uint64_t>(std::time(nullptr)));
  crypto::SecretBytes back;
  if (fernet->decrypt(token, back) != crypto::TokenError::kNone ||
      !crypto::ByteView(back).equals(std::string_view(kProbe))) {
    log::error("{}: a test token did not round-trip", text.label);
    return to_int(ExitCode::kFailure);
  }
  std::printf("%s: ok, fingerprint %s\n", text.label.c_str(), fernet->fingerprint().c_str());
  return to_int(ExitCode::kOk);
}

}  // namespace

void add_keygen_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<KeygenOptions>();
  CLI::App* cmd = root.add_subcommand("keygen",
                                      "Generate a new SECRET_KEY and ENCRYPTION_KEY in .env form.\n"
                                      "Example: rekey keygen > new.env && chmod 600 new.env");
  cmd->add_option("--format", o->format, "env or json")
      ->transform(
          choices(std::map<std::string, OutputFormat>{{"env", OutputFormat::kEnv}, {"json", OutputFormat::kJson}}));
  cmd->add_flag("--fernet", o->fernet, "Print a raw Fernet key (Fernet.generate_key() form) instead");
  cmd->callback([o, &exit_code] { exit_code = run_keygen(*o); });
}

void add_check_key_command(CLI::App& root, int& exit_code) {
  auto o = std::make_shared<CheckKeyOptions>();
  CLI::App* cmd =
      root.add_subcommand("check-key",
                          "Check a key's strength, derive it, round-trip a token and print its fingerprint.\n"
                          "Example: ENCRYPTION_KEY=... rekey check-key --kind encryption");
  cmd->add_option("--key-env", o->key_env, "Environment variable holding the key")
      ->capture_default_str()
      ->each([o](const std::string& /*name*/) { o->key_env_given = true; });
  cmd->add_option("--key-file", o->key_file, "File holding the key (instead of --key-env)");
  cmd->add_option("--key-command", o->key_command, "Command printing the key, e.g. a secret store's CLI");
  cmd->add_option("--key-command-timeout", o->key_command_timeout, "Time the key command may take")
      ->capture_default_str();
  add_readable_key_file_flag(*cmd, o->readable);
  cmd->add_option("--kind", o->kind, "encryption (ENCRYPTION_KEY, >= 32 chars) or secret (SECRET_KEY, >= 64 chars)")
      ->transform(
          choices(std::map<std::string, KeyKind>{{"encryption", KeyKind::kEncryption}, {"secret", KeyKind::kSecret}}));
  cmd->add_option("--key-format", o->format, "passphrase or fernet")
      ->transform(choices(std::map<std::string, crypto::KeyFormat>{{"passphrase", crypto::KeyFormat::kPassphrase},
                                                                   {"fernet", crypto::KeyFormat::kFernet}}));
  cmd->add_option("--kdf-iterations", o->kdf.iterations, "PBKDF2 iterations")->check(CLI::Range(1u, 100000000u));
  cmd->add_option("--kdf-salt", o->kdf.salt, "PBKDF2 salt");
  cmd->callback([o, &exit_code] { exit_code = run_check_key(*o); });
}

}  // namespace rekey
