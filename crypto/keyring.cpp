#include "crypto/keyring.h"

#include <stdexcept>

#include "crypto/base64.h"

namespace rekey::crypto {
namespace {

FailureReason reason_of(TokenError error) {
  switch (error) {
    case TokenError::kNone: return FailureReason::kNone;
    case TokenError::kBadBase64: return FailureReason::kBadBase64;
    case TokenError::kBadVersion: return FailureReason::kBadVersion;
    case TokenError::kTooShort: return FailureReason::kTooShort;
    case TokenError::kAuthentication: return FailureReason::kNoKeyMatches;
    case TokenError::kBadCiphertext: return FailureReason::kBadPadding;
  }
  return FailureReason::kBadVersion;
}

// The token inside a stored value, found as the service would read it.
struct Located {
  TokenError error = TokenError::kNone;
  ValueFormat format = ValueFormat::kPlain;
  ParsedToken token;
};

// A token's text always begins "gAAAAA" for any timestamp before 2^40; a
// wrapped token's text begins with the base64 of that. Decoded, the wrapped
// form starts with 'g'.
Located locate(std::string_view stored) {
  Located found;
  found.error = ParsedToken::parse(stored, found.token);
  if (found.error == TokenError::kNone) return found;

  std::vector<std::uint8_t> inner;
  if (!base64url_decode_lenient(stored, inner) || inner.empty() || inner[0] != 'g') return found;
  Located wrapped;
  wrapped.format = ValueFormat::kWrapped;
  wrapped.error = ParsedToken::parse(
      std::string_view(reinterpret_cast<const char*>(inner.data()), inner.size()), wrapped.token);
  return wrapped;
}

}  // namespace

const char* to_string(ValueFormat format) { return format == ValueFormat::kPlain ? "plain" : "wrapped"; }

const char* to_string(ValueOutcome outcome) {
  switch (outcome) {
    case ValueOutcome::kAlreadyNew: return "already_new";
    case ValueOutcome::kUnderOldKey: return "under_old_key";
    case ValueOutcome::kRotated: return "rotated";
    case ValueOutcome::kUndecryptable: return "undecryptable";
    case ValueOutcome::kNotToken: return "not_a_token";
  }
  return "unknown";
}

const char* to_string(FailureReason reason) {
  switch (reason) {
    case FailureReason::kNone: return "none";
    case FailureReason::kBadBase64: return "bad_base64";
    case FailureReason::kBadVersion: return "bad_version";
    case FailureReason::kTooShort: return "too_short";
    case FailureReason::kNoKeyMatches: return "hmac_mismatch_all_keys";
    case FailureReason::kBadPadding: return "bad_padding";
    case FailureReason::kVerifyFailed: return "reencrypt_verify_failed";
  }
  return "unknown";
}

Keyring::Keyring(std::unique_ptr<const Fernet> new_key, std::vector<std::unique_ptr<const Fernet>> old_keys) {
  if (!new_key) throw std::invalid_argument("a keyring needs a new key");
  keys_.push_back(std::move(new_key));
  for (auto& k : old_keys) {
    if (!k) throw std::invalid_argument("a keyring's old key is null");
    keys_.push_back(std::move(k));
  }
}

ValueResult Keyring::inspect(std::string_view stored) const { return process(stored, false); }
ValueResult Keyring::rotate(std::string_view stored) const { return process(stored, true); }

ValueResult Keyring::process(std::string_view stored, bool reencrypt) const {
  ValueResult result;
  const Located found = locate(stored);
  result.format = found.format;
  if (found.error != TokenError::kNone) {
    result.reason = reason_of(found.error);
    result.outcome = found.error == TokenError::kTooShort ? ValueOutcome::kUndecryptable : ValueOutcome::kNotToken;
    return result;
  }

  SecretBytes plaintext;
  TokenError last = TokenError::kAuthentication;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    last = keys_[i]->decrypt(found.token, plaintext);
    if (last == TokenError::kNone) {
      result.key_index = static_cast<int>(i);
      break;
    }
    if (last == TokenError::kBadCiphertext) break;  // authenticated: no other key can verify it
  }
  if (result.key_index < 0) {
    result.outcome = ValueOutcome::kUndecryptable;
    result.reason = reason_of(last);
    return result;
  }
  if (result.key_index == 0) {
    result.outcome = ValueOutcome::kAlreadyNew;
    return result;
  }
  if (!reencrypt) {
    result.outcome = ValueOutcome::kUnderOldKey;
    return result;
  }

  const std::uint64_t timestamp = found.token.timestamp();
  std::string token = new_key().encrypt(plaintext, timestamp);
  result.rotated = found.format == ValueFormat::kPlain
                       ? std::move(token)
                       : base64url_encode(reinterpret_cast<const std::uint8_t*>(token.data()), token.size());

  // Prove the exact text to be stored reads back, through the same path a
  // reader takes, to the same plaintext and timestamp under the new key.
  const Located check = locate(result.rotated);
  SecretBytes round_trip;
  const bool verified = check.error == TokenError::kNone && check.format == found.format &&
                        check.token.timestamp() == timestamp &&
                        new_key().decrypt(check.token, round_trip) == TokenError::kNone &&
                        ByteView(round_trip).equals(ByteView(plaintext));
  if (!verified) {
    result.rotated.clear();
    result.outcome = ValueOutcome::kUndecryptable;
    result.reason = FailureReason::kVerifyFailed;
    return result;
  }
  result.outcome = ValueOutcome::kRotated;
  return result;
}

}  // namespace rekey::crypto
