#include "migrate/key_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "crypto/fernet.h"
#include "migrate/cli_choices.h"
#include "migrate/errors.h"
#include "migrate/key_source.h"
#include "migrate/log.h"

namespace rekey {
namespace {

enum class OutputFormat { kEnv, kJson };
enum class KeyKind { kEncryption, kSecret };

struct KeygenOptions {
  OutputFormat format = OutputFormat::kEnv;
  bool fernet = false;
};

std::string as_string(const crypto::SecretBytes& b) { return std::string(b.begin(), b.end()); }

// Writes secrets to stdout only; the strings are wiped before release.
int run_keygen(const KeygenOptions& o) {
  std::string out;
  if (o.fernet) {
    const crypto::SecretBytes key = crypto::generate_fernet_key();
    out = o.format == OutputFormat::kJson ? nlohmann::json{{"FERNET_KEY", as_string(key)}}.dump() + "\n"
                                          : as_string(key) + "\n";
  } else {
    const crypto::SecretBytes secret = crypto::generate_passphrase(96);
    const crypto::SecretBytes encryption = crypto::generate_passphrase(64);
    out =
        o.format == OutputFormat::kJson
            ? nlohmann::json{{"SECRET_KEY", as_string(secret)}, {"ENCRYPTION_KEY", as_string(encryption)}}.dump() + "\n"
            : "SECRET_KEY=" + as_string(secret) + "\nENCRYPTION_KEY=" + as_string(encryption) + "\n";
  }
  const bool ok = std::fwrite(out.data(), 1, out.size(), stdout) == out.size() && std::fflush(stdout) == 0;
  crypto::wipe(out.data(), out.size());
  if (!ok) {
    log::error("cannot write the generated key to standard output");
    return to_int(ExitCode::kFailure);
  }
  return to_int(ExitCode::kOk);
}

struct CheckKeyOptions {
  std::string key_env = "ENCRYPTION_KEY";
  std::string key_file;
  KeyKind kind = KeyKind::kEncryption;
  crypto::KeyFormat format = crypto::KeyFormat::kPassphrase;
  crypto::KdfParams kdf;
};

int run_check_key(const CheckKeyOptions& o) {
  const KeyText text = o.key_file.empty() ? read_key_from_env(o.key_env) : read_key_from_file(o.key_file);
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
  cmd->add_option("--key-env", o->key_env, "Environment variable holding the key")->capture_default_str();
  cmd->add_option("--key-file", o->key_file, "File holding the key (instead of --key-env)");
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
