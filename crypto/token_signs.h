// The signs by which a value may hold a token, for a census that lets the
// database server pass on only such values (see migrate/relation_census.h).
// Structure only, no key. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rekey::crypto {

struct TokenSigns {
  // Held anywhere by every token with a timestamp below 2^36, plain or
  // wrapped (token_prefixes()).
  std::vector<std::string> anywhere;
  // A value that is one token as a whole (any timestamp) starts with one of
  // these ('g' plain, 'Z' wrapped)...
  std::string first_chars;
  // ...and is at least this long: the text of the shortest token.
  std::size_t min_whole_length = 0;
};

const TokenSigns& token_signs();

// True when `value` is, as a whole, one well-formed token of any timestamp:
// url-safe base64 text alone that decodes to a token's bytes (version 0x80,
// whole AES blocks), plain or wrapped (whose inner text is url-safe base64
// alone too). Random base64 of another length never is.
bool is_whole_token(std::string_view value);

// True when `value` holds a token prefix (token_prefixes()) anywhere.
bool holds_token_prefix(std::string_view value);

// True when `value` holds a token prefix anywhere or is one token as a
// whole: the values a census of a discovered column counts.
bool holds_token(std::string_view value);

}  // namespace rekey::crypto
