#include "crypto/keyring.h"

#include <stdexcept>

#include "crypto/base64.h"
#include "crypto/token_signs.h"

namespace rekey::crypto {
namespace {

FailureReason reason_of(TokenError error) {
  switch (error) {
    case TokenError::kNone:
      return FailureReason::kNone;
    case TokenError::kBadBase64:
      return FailureReason::kBadBase64;
    case TokenError::kBadVersion:
      return FailureReason::kBadVersion;
    case TokenError::kTooShort:
      return FailureReason::kTooShort;
    case TokenError::kAuthentication:
      return FailureReason::kNoKeyMatches;
    case TokenError::kBadCiphertext:
      return FailureReason::kBadPadding;
  }
  return FailureReason::kBadVersion;
}

bool succeeded(ValueOutcome outcome) {
  return outcome == ValueOutcome::kAlreadyNew || outcome == ValueOutcome::kUnderOldKey ||
         outcome == ValueOutcome::kRotated;
}

ValueResult failure(ValueOutcome outcome, FailureReason reason) {
  ValueResult result;
  result.outcome = outcome;
  result.reason = reason;
  return result;
}

// A value read as one token holds one, unless it is not a token at all.
ValueResult counted_as_one(ValueResult result) {
  result.tokens = result.outcome == ValueOutcome::kNotToken ? 0 : 1;
  return result;
}

// Whether a rewritten value reads back as kind 2 with its tokens exactly at
// `placed`: then every byte around them is where it was.
bool reads_back_at(std::string_view rotated, const std::vector<TokenSpan>& placed) {
  if (is_single_token_text(rotated)) return false;
  const SpanScan scan = find_token_spans(rotated);
  return scan.boundaries == Boundaries::kClear && scan.spans == placed;
}

}  // namespace

const char* to_string(ValueOutcome outcome) {
  switch (outcome) {
    case ValueOutcome::kAlreadyNew:
      return "already_new";
    case ValueOutcome::kUnderOldKey:
      return "under_old_key";
    case ValueOutcome::kRotated:
      return "rotated";
    case ValueOutcome::kUndecryptable:
      return "undecryptable";
    case ValueOutcome::kNotToken:
      return "not_a_token";
  }
  return "unknown";
}

const char* to_string(FailureReason reason) {
  switch (reason) {
    case FailureReason::kNone:
      return "none";
    case FailureReason::kBadBase64:
      return "bad_base64";
    case FailureReason::kBadVersion:
      return "bad_version";
    case FailureReason::kTooShort:
      return "too_short";
    case FailureReason::kNoKeyMatches:
      return "hmac_mismatch_all_keys";
    case FailureReason::kBadPadding:
      return "bad_padding";
    case FailureReason::kVerifyFailed:
      return "reencrypt_verify_failed";
    case FailureReason::kUnclearTokenBoundary:
      return "token_boundary_unclear";
    case FailureReason::kForeignBytesInToken:
      return "token_with_foreign_bytes";
  }
  return "unknown";
}

const char* why_not_new(const ValueResult& result) {
  switch (result.outcome) {
    case ValueOutcome::kUndecryptable:
      return to_string(result.reason);
    case ValueOutcome::kRotated:  // it was under an old key
      return to_string(ValueOutcome::kUnderOldKey);
    default:
      return to_string(result.outcome);
  }
}

Keyring::Keyring(std::unique_ptr<const Fernet> new_key, std::vector<std::unique_ptr<const Fernet>> old_keys) {
  if (!new_key) throw std::invalid_argument("a keyring needs a new key");
  keys_.push_back(std::move(new_key));
  for (auto& k : old_keys) {
    if (!k) throw std::invalid_argument("a keyring's old key is null");
    for (const auto& earlier : keys_) distinct_ = distinct_ && !earlier->same_key(*k);
    keys_.push_back(std::move(k));
  }
}

ValueResult Keyring::inspect(std::string_view stored) const { return process(stored, Action::kInspect); }
ValueResult Keyring::rotate(std::string_view stored) const { return process(stored, Action::kReencrypt); }

// Tells the three kinds of value apart (see keyring.h).
ValueResult Keyring::process(std::string_view stored, Action action) const {
  if (is_single_token_text(stored)) return counted_as_one(process_token(stored, action));
  const SpanScan scan = find_token_spans(stored);
  if (scan.boundaries == Boundaries::kUnclear || hides_a_token(stored, scan.spans)) {
    return failure(ValueOutcome::kUndecryptable, FailureReason::kUnclearTokenBoundary);
  }
  if (!scan.spans.empty()) return process_spans(stored, scan.spans, action);
  return counted_as_one(process_lenient(stored, action));
}

// Kind 2: every span read as one token; the value is rewritten only when all
// of them read, and only inside the spans under an old key.
ValueResult Keyring::process_spans(std::string_view stored, const std::vector<TokenSpan>& spans, Action action) const {
  ValueResult result;
  result.outcome = ValueOutcome::kAlreadyNew;
  result.key_index = 0;
  std::vector<TokenSpan> placed;  // where each token is in result.rotated
  std::size_t copied = 0;         // bytes of `stored` already in result.rotated
  for (const TokenSpan& span : spans) {
    const std::string_view text = stored.substr(span.begin, span.end - span.begin);
    ValueResult one = process_token(text, action);
    if (!succeeded(one.outcome)) {
      one.tokens = static_cast<int>(spans.size());
      return one;
    }
    if (&span == &spans.front()) result.format = one.format;
    if (result.key_index == 0) result.key_index = one.key_index;
    if (action == Action::kReencrypt) {
      result.rotated.append(stored.substr(copied, span.begin - copied));
      const std::string_view token = one.outcome == ValueOutcome::kRotated ? one.rotated : text;
      placed.push_back(TokenSpan{result.rotated.size(), result.rotated.size() + token.size()});
      result.rotated.append(token);
      copied = span.end;
    }
  }
  result.tokens = static_cast<int>(spans.size());
  if (result.key_index == 0) {
    result.rotated.clear();
    return result;
  }
  if (action == Action::kInspect) {
    result.outcome = ValueOutcome::kUnderOldKey;
    return result;
  }
  result.rotated.append(stored.substr(copied));
  if (!reads_back_at(result.rotated, placed)) {
    ValueResult failed = failure(ValueOutcome::kUndecryptable, FailureReason::kVerifyFailed);
    failed.format = result.format;
    failed.tokens = result.tokens;
    return failed;
  }
  result.outcome = ValueOutcome::kRotated;
  return result;
}

// Kind 3: read as Python would, never rewritten.
ValueResult Keyring::process_lenient(std::string_view stored, Action action) const {
  ValueResult result = process_token(stored, Action::kInspect);
  if (action == Action::kReencrypt && result.outcome == ValueOutcome::kUnderOldKey) {
    result.outcome = ValueOutcome::kUndecryptable;
    result.reason = FailureReason::kForeignBytesInToken;
    result.key_index = -1;
  }
  return result;
}

namespace {

// The readings of a token's text that parse, plain first.
struct ParsedReadings {
  const Located* tries[2] = {nullptr, nullptr};
  int n = 0;
};

ParsedReadings parsed_readings(const Readings& readings) {
  ParsedReadings parsed;
  if (readings.plain.error == TokenError::kNone) parsed.tries[parsed.n++] = &readings.plain;
  if (readings.has_wrapped && readings.wrapped.error == TokenError::kNone) parsed.tries[parsed.n++] = &readings.wrapped;
  return parsed;
}

// A text neither reading parses: too short for a token, or none at all.
ValueResult unparsed(const Readings& readings) {
  const Located& shown = readings.has_wrapped ? readings.wrapped : readings.plain;
  ValueResult result;
  result.format = shown.format;
  result.reason = reason_of(shown.error);
  result.outcome = shown.error == TokenError::kTooShort ? ValueOutcome::kUndecryptable : ValueOutcome::kNotToken;
  return result;
}

}  // namespace

// Which key verified a token (key_index as in ValueResult, -1: none), under
// which reading, and the plain reading's error when none did.
struct Keyring::KeyMatch {
  int key_index = -1;
  const Located* reading = nullptr;
  TokenError first_error = TokenError::kNone;
};

// One token's text, read leniently (kind 1, and each span of kind 2).
ValueResult Keyring::process_token(std::string_view text, Action action) const {
  const Readings readings = locate(text);
  // Try the plain reading first, then the wrapped one; report the first that
  // parses (or the plain reading's error).
  const ParsedReadings parsed = parsed_readings(readings);
  if (parsed.n == 0) return unparsed(readings);
  SecretBytes plaintext;
  const KeyMatch match = find_key(parsed.tries, parsed.n, plaintext);
  ValueResult result;
  result.format = match.reading->format;
  result.key_index = match.key_index;
  if (match.key_index < 0) {
    result.outcome = ValueOutcome::kUndecryptable;
    result.reason = reason_of(match.first_error);
  } else if (match.key_index == 0) {
    result.outcome = ValueOutcome::kAlreadyNew;
  } else if (action == Action::kInspect) {
    result.outcome = ValueOutcome::kUnderOldKey;
  } else {
    return reencrypted(std::move(result), *match.reading, plaintext);
  }
  return result;
}

// With distinct keys, the key that verified this thread's previous value is
// tried first (a table is mostly under one key), then the new key and the old
// keys in order: a token verifies under at most one of distinct keys, so the
// order cannot change the outcome. A key listed twice keeps strict order.
Keyring::KeyMatch Keyring::find_key(const Located* const* tries, int n, SecretBytes& plaintext) const {
  thread_local const Keyring* hint_ring = nullptr;
  thread_local std::size_t hint = 0;
  const std::size_t first = distinct_ && hint_ring == this && hint < keys_.size() ? hint : 0;
  KeyMatch match;
  match.reading = tries[0];
  for (int t = 0; t < n && match.key_index < 0; ++t) {
    TokenError last = TokenError::kAuthentication;
    for (std::size_t k = 0; k < keys_.size(); ++k) {
      const std::size_t i = k == 0 ? first : (k - 1 < first ? k - 1 : k);
      last = keys_[i]->decrypt(tries[t]->token, plaintext);
      if (last == TokenError::kNone) {
        match.key_index = static_cast<int>(i);
        match.reading = tries[t];
        hint_ring = this;
        hint = i;
        break;
      }
      if (last == TokenError::kBadCiphertext) break;  // authenticated: no other key can verify it
    }
    if (t == 0) match.first_error = last;
  }
  return match;
}

// `found`'s plaintext under the new key, same timestamp and format, proven to
// read back, through the same path a reader takes, to the same plaintext and
// timestamp under the new key (kVerifyFailed otherwise).
ValueResult Keyring::reencrypted(ValueResult result, const Located& found, const SecretBytes& plaintext) const {
  const std::uint64_t timestamp = found.token.timestamp();
  std::string token = new_key().encrypt(plaintext, timestamp);
  result.rotated = found.format == ValueFormat::kPlain
                       ? std::move(token)
                       : base64url_encode(reinterpret_cast<const std::uint8_t*>(token.data()), token.size());
  const Readings check_readings = locate(result.rotated);
  const Located& check = found.format == ValueFormat::kPlain ? check_readings.plain : check_readings.wrapped;
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
