// How the text of a stored value is read as one token, as the service reads
// it: leniently (Python's urlsafe_b64decode), plain or wrapped once more in
// url-safe base64; and the key-independent questions discovery and the
// Keyring ask of a value. Pure functions, thread-safe; no key involved.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "crypto/fernet.h"
#include "crypto/token_spans.h"

namespace rekey::crypto {

// How a value is stored: the token text itself, or the token text
// url-safe-base64-encoded once more (the service's encrypt_data).
enum class ValueFormat { kPlain, kWrapped };
const char* to_string(ValueFormat format);

// The token inside a stored value, found as the service would read it.
struct Located {
  TokenError error = TokenError::kNone;
  ValueFormat format = ValueFormat::kPlain;
  ParsedToken token;
};

// The readings of a stored value: as a token, and, when its decoded bytes
// could be token text (the first character base64 does not skip is 'g', as
// every token's text starts with 'g'), as a wrapped token.
struct Readings {
  Located plain;
  bool has_wrapped = false;
  Located wrapped;
};

// `stored` read both ways; a reading that fails says why in its `error`.
Readings locate(std::string_view stored);

// Key-independent detection, for discovery: the format of the first token in
// `stored` read as the Keyring reads it (one token, the first embedded span
// that parses, or the lenient reading; a token parses plain, else wrapped once
// more in url-safe base64), nullopt when it holds none or its token
// boundaries are unclear. Checks structure only (base64, version byte,
// length), never authenticity. Pure and thread-safe.
std::optional<ValueFormat> token_format(std::string_view stored);

// True when, beside the tokens at `spans`, `stored` holds a token that has no
// prefix (a timestamp of 2^36 or more): such a value is left untouched
// (token_boundary_unclear), never half rotated.
bool hides_a_token(std::string_view stored, const std::vector<TokenSpan>& spans);

}  // namespace rekey::crypto
