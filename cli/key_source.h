// Where keys come from (environment variables and files, never the command
// line) and how they become a Keyring. Errors are UsageError naming the
// variable or file, never its contents.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/key_material.h"
#include "crypto/keyring.h"

namespace CLI {
class App;
}

namespace rekey {

enum class OldKeyPolicy { kRequired, kOptional };

// A key file that group or others may access: refused (as ssh refuses such a
// private key), or used with a warning (--allow-readable-key-file).
enum class ReadableKeyFile { kRefuse, kAllow };

struct KeyOptions {
  std::string new_key_env = "NEW_ENCRYPTION_KEY";
  bool new_key_env_given = false;  // --new-key-env given (on the command line or in the config file)
  std::string new_key_file;
  std::vector<std::string> old_key_envs;
  std::vector<std::string> old_key_files;
  std::string new_key_command;                // a secret store's CLI printing the new key (key_command.h)
  std::vector<std::string> old_key_commands;  // likewise for old keys, in order
  std::string key_command_timeout = "30s";
  // More variables no key command may inherit: the one --db-env names (set
  // by the commands that take --db).
  std::vector<std::string> hidden_env;
  std::string key_name = "ENCRYPTION_KEY";  // the variable a key file in .env form is read by
  ReadableKeyFile readable_files = ReadableKeyFile::kRefuse;
  crypto::KeyFormat format = crypto::KeyFormat::kPassphrase;
  crypto::KdfParams kdf;
};

// Registers --new-key-env, --new-key-file, --new-key-command, --old-key-env,
// --old-key-file, --old-key-command, --key-command-timeout, --key-name,
// --allow-readable-key-file, --key-format, --kdf-iterations and --kdf-salt on
// `app`.
void add_key_options(CLI::App& app, KeyOptions& options);

// True if `name` can name an environment variable: letters, digits and _,
// not starting with a digit. Pure.
bool is_env_name(std::string_view name);

// Registers --allow-readable-key-file on `app`, stored in `readable`.
void add_readable_key_file_flag(CLI::App& app, ReadableKeyFile& readable);

// One key read from its source: its label (e.g. "environment variable
// NEW_ENCRYPTION_KEY") and its raw text, in wiped storage.
struct KeyText {
  std::string label;
  crypto::SecretBytes text;
};

// The key in a key file's `text`: in .env form (NAME=value lines, as `rekey
// keygen` writes them) the value of the `key_name` line, without quotes;
// otherwise the text itself, which must then be one line. Throws UsageError
// naming `label` (never the text) when .env form has no such line or a
// file of several lines is in no such form. Pure.
crypto::SecretBytes key_in_file_text(const crypto::SecretBytes& text, const std::string& key_name,
                                     const std::string& label);

// Reads an environment variable (then wiped and removed) or a file. Throws
// UsageError if missing or empty. A file is opened once (a symbolic link is
// followed, as secret mounts use them) and judged by what was opened: it must
// be a regular file, and one group or others may access is refused (exit 2,
// naming the file, its mode and `chmod 600`) unless `readable` is kAllow, which
// warns. Its text is read into wiped storage only.
KeyText read_key_from_env(const std::string& name);
KeyText read_key_from_file(const std::string& path, const std::string& key_name, ReadableKeyFile readable);

// Runs a key command (key_command.h) within `options`' --key-command-timeout.
// Its process inherits none of the variables keys or database passwords are
// read from. Throws UsageError.
KeyText read_key_from_command(const std::string& command, const KeyOptions& options);

enum class KeyRole { kNew, kOld };

// Derives (passphrase) or decodes (fernet) one key. A new key that is short or
// malformed is a UsageError; an old key that is short only warns.
crypto::SecretBytes derive_key(const KeyText& key, KeyRole role, crypto::KeyFormat format, const crypto::KdfParams& kdf,
                               std::size_t min_chars = crypto::kMinEncryptionKeyChars);

// kRollback: the keys of `rekey rollback --run N` as the operator names them
// (the new key is run N's new key, the first old key run N's first old key),
// in the keyring swapped: run N's first old key is the one to rotate to (held
// to a new key's strength), and run N's new key the first to decrypt with.
enum class KeyOrder { kAsGiven, kRollback };

// Where the keys of a keyring came from, in its order (new key first): each
// source's label ("environment variable X", "key file F", "key command `C`").
// Never a key; for reports and the audit log.
struct KeySources {
  std::string new_key;
  std::vector<std::string> old_keys;
};

// Loads the new key, then the old keys: variables (each then wiped and
// removed from the environment), files, then commands, each source's in the
// order given. A key command inherits none of the variables keys or database
// passwords are read from (read_key_from_command). Old keys default to
// OLD_ENCRYPTION_KEY when none is named. Throws UsageError if an old key equals the new key, or
// if an old key is required but none is set.
// Where each key came from goes to `sources` when given.
std::unique_ptr<crypto::Keyring> load_keyring(const KeyOptions& options, OldKeyPolicy policy,
                                              KeyOrder order = KeyOrder::kAsGiven, KeySources* sources = nullptr);

}  // namespace rekey
