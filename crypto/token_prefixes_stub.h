// TEMPORARY until the crypto-spans branch is merged.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "crypto/base64.h"
#include "crypto/keyring.h"

namespace rekey::crypto {

// What marks a value that may hold a token, for a filter on the database
// server: a value holding none of these signs holds no token rekey reads.
struct TokenSigns {
  // Every token with a timestamp below 2^36 (the year 4147) starts with
  // "gAAAAA", and its text base64-encoded once more with "Z0FBQUFB".
  std::vector<std::string> anywhere{"gAAAAA", "Z0FBQUFB"};
  // A value that is one token as a whole (any timestamp) starts with 'g'
  // (plain) or 'Z' (wrapped) and is at least 100 characters long.
  std::string first_chars{"gZ"};
  std::size_t min_whole_length = 100;
};
inline const TokenSigns& token_signs() {
  static const TokenSigns signs;
  return signs;
}

namespace detail {
inline bool strict_text(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= 'a' && text[i] <= 'z') ||
                             (text[i] >= '0' && text[i] <= '9') || text[i] == '-' || text[i] == '_')) {
    ++i;
  }
  while (i < text.size() && text[i] == '=') ++i;
  return i == text.size() && !text.empty();
}
}  // namespace detail

namespace detail {
// Token bytes: version 0x80, timestamp, IV, whole AES blocks, HMAC.
inline bool token_bytes(const std::vector<std::uint8_t>& b) {
  return b.size() >= 73 && (b.size() - 57) % 16 == 0 && b[0] == 0x80;
}
}  // namespace detail

// True when `value` is, as a whole, one well-formed token (any timestamp):
// url-safe base64 text alone that decodes to a token's bytes, plain or
// wrapped (whose inner token text is url-safe base64 alone too). Structure only.
inline bool is_whole_token(std::string_view value) {
  std::vector<std::uint8_t> outer;
  if (!detail::strict_text(value) || !base64url_decode_lenient(value, outer)) return false;
  if (detail::token_bytes(outer)) return true;
  const std::string_view inner_text(reinterpret_cast<const char*>(outer.data()), outer.size());
  std::vector<std::uint8_t> inner;
  return detail::strict_text(inner_text) && base64url_decode_lenient(inner_text, inner) && detail::token_bytes(inner);
}

// True when `value` holds a token sign anywhere, or is one token as a whole:
// the values a discovered column's census counts.
inline bool holds_token(std::string_view value) {
  for (const auto& p : token_signs().anywhere) {
    if (value.find(p) != std::string_view::npos) return true;
  }
  return is_whole_token(value);
}

}  // namespace rekey::crypto
