// The new key and the old keys of a rotation, and what they make of one
// stored value: which keys its tokens are under, and its re-encryption under
// the new key. A Keyring is immutable and safe to share between threads.
//
// A stored value (text or bytea bytes) is read in one of three ways:
//  1. One token: only url-safe base64 alphabet characters, then at most two
//     '=' (is_single_token_text). Read leniently, as Python's
//     urlsafe_b64decode reads it, as a plain token or a wrapped one.
//  2. Tokens embedded in other bytes (several joined by commas, in a JSON
//     string or array, inside text, with whitespace around): each span that
//     find_token_spans finds is read as in 1. The value is replaced by one in
//     which each old-key span is re-encrypted in place and every other byte
//     is kept; if any span fails, or a span's start is unclear, the whole
//     value fails and is left as it is.
//  3. Neither: read leniently as one token, as Python would. Such a value
//     can be under an old key (inspect says so) but is never rewritten: its
//     re-encryption could not keep the bytes around the token.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/fernet.h"
#include "crypto/token_reading.h"
#include "crypto/token_spans.h"

namespace rekey::crypto {

enum class ValueOutcome {
  kAlreadyNew,     // decrypts under the new key; nothing to write
  kUnderOldKey,    // inspect(): decrypts under an old key
  kRotated,        // rotate(): decrypted under an old key; `rotated` holds its replacement
  kUndecryptable,  // holds what looks like a token, but it cannot be read or rewritten safely (see reason)
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
  kVerifyFailed,          // the re-encrypted value did not decrypt back to the same plaintext
  kUnclearTokenBoundary,  // a token prefix inside a run of base64 characters: where a token starts is unclear
  kForeignBytesInToken,   // rotate(): a token read across bytes it cannot keep (kind 3 above), under an old key
};
const char* to_string(FailureReason reason);

// For a value holding several tokens: `format` is the first token's (or the
// failing one's), `key_index` the first old key found, else 0 when every
// token is under the new key, and a failure is the first failing token's.
struct ValueResult {
  ValueOutcome outcome = ValueOutcome::kNotToken;
  ValueFormat format = ValueFormat::kPlain;
  FailureReason reason = FailureReason::kNone;
  int key_index = -1;   // 0: the new key; i > 0: old key i-1; -1: none (every failure)
  std::string rotated;  // the value to store, for kRotated only
  int tokens = 0;       // token spans found (kind 2 above); else 1, or 0 for kNotToken and unclear boundaries
};

// Why a value is not under the new key, in the one vocabulary rotate's
// failures and verify's examples share: the outcome (under_old_key,
// not_a_token) or, for an undecryptable value, its FailureReason. Only for a
// result that is not kAlreadyNew.
const char* why_not_new(const ValueResult& result);

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

  // Finds the keys the tokens of `stored` are under; never re-encrypts.
  ValueResult inspect(std::string_view stored) const;

  // As inspect(), and for a value holding tokens under an old key, re-encrypts
  // each of them under the new key keeping its timestamp and format, and keeps
  // every byte around them, then proves each token decrypts under the new key
  // to the same plaintext and timestamp and that the value reads back with its
  // tokens at the same places (kVerifyFailed otherwise). Plaintext never
  // leaves this call.
  ValueResult rotate(std::string_view stored) const;

 private:
  enum class Action { kInspect, kReencrypt };
  ValueResult process(std::string_view stored, Action action) const;
  ValueResult process_token(std::string_view text, Action action) const;
  ValueResult process_spans(std::string_view stored, const std::vector<TokenSpan>& spans, Action action) const;
  ValueResult process_lenient(std::string_view stored, Action action) const;
  struct KeyMatch;
  KeyMatch find_key(const Located* const* tries, int n, SecretBytes& plaintext) const;
  ValueResult reencrypted(ValueResult result, const Located& found, const SecretBytes& plaintext) const;
  std::vector<std::unique_ptr<const Fernet>> keys_;  // [0] is the new key
  bool distinct_ = true;                             // no key listed twice: try order is free
};

}  // namespace rekey::crypto
