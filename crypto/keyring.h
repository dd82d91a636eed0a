// The new key and the old keys of a rotation, and what they make of one
// stored value: which key it is under, and its re-encryption under the new
// key. A Keyring is immutable and safe to share between threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/fernet.h"

namespace rekey::crypto {

// How a value is stored: the token text itself, or the token text
// url-safe-base64-encoded once more (the service's encrypt_data).
enum class ValueFormat { kPlain, kWrapped };
const char* to_string(ValueFormat format);

enum class ValueOutcome {
  kAlreadyNew,     // decrypts under the new key; nothing to write
  kUnderOldKey,    // inspect(): decrypts under an old key
  kRotated,        // rotate(): decrypted under an old key; `rotated` holds its replacement
  kUndecryptable,  // looks like a token but no key decrypts it
  kNotToken,       // is not a Fernet token in either format
};
const char* to_string(ValueOutcome outcome);

enum class FailureReason {
  kNone,
  kBadBase64,
  kBadVersion,
  kTooShort,
  kNoKeyMatches,  // the HMAC verifies under none of the keys
  kBadPadding,
  kVerifyFailed,  // the re-encrypted value did not decrypt back to the same plaintext
};
const char* to_string(FailureReason reason);

struct ValueResult {
  ValueOutcome outcome = ValueOutcome::kNotToken;
  ValueFormat format = ValueFormat::kPlain;
  FailureReason reason = FailureReason::kNone;
  int key_index = -1;   // 0: the new key; i > 0: old key i-1; -1: none
  std::string rotated;  // the value to store, for kRotated only
};

class Keyring {
 public:
  // `new_key` must not be null. Old keys are tried in the order given.
  Keyring(std::unique_ptr<const Fernet> new_key, std::vector<std::unique_ptr<const Fernet>> old_keys);

  const Fernet& new_key() const { return *keys_.front(); }
  std::size_t old_key_count() const { return keys_.size() - 1; }
  const Fernet& old_key(std::size_t i) const { return *keys_.at(i + 1); }
  // Fingerprint of key_index as used in ValueResult.
  const std::string& fingerprint(int key_index) const {
    return keys_.at(static_cast<std::size_t>(key_index))->fingerprint();
  }

  // Finds the key `stored` is under; never re-encrypts.
  ValueResult inspect(std::string_view stored) const;

  // As inspect(), and for a value under an old key, re-encrypts it under the
  // new key keeping its timestamp and format, then proves the result decrypts
  // under the new key to the same plaintext and timestamp (kVerifyFailed
  // otherwise). Plaintext never leaves this call.
  ValueResult rotate(std::string_view stored) const;

 private:
  ValueResult process(std::string_view stored, bool reencrypt) const;
  std::vector<std::unique_ptr<const Fernet>> keys_;  // [0] is the new key
  bool distinct_ = true;                             // no key listed twice: try order is free
};

// Key-independent detection, for discovery: the format of `stored` when it
// parses as a Fernet token the way the service reads it (plain, else wrapped
// once more in url-safe base64), nullopt otherwise. Checks structure only
// (base64, version byte, length), never authenticity. Pure and thread-safe.
std::optional<ValueFormat> token_format(std::string_view stored);

}  // namespace rekey::crypto
