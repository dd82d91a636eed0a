// Where Fernet tokens sit in a stored value, found from its bytes alone (no
// key, no decoding). Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <vector>

namespace rekey::crypto {

// The text every token rekey finds starts with: "gAAAAA" is the version byte
// 0x80 and the top 28 bits of the timestamp, which are zero for every
// timestamp below 2^36 (the year 4147), so every token starts with it;
// "Z0FBQUFB" is "gAAAAA" url-safe-base64-encoded, so every wrapped token
// starts with it. A value in which neither occurs (e.g. SQL
// `strpos(value, prefix) = 0` for both) holds no token.
constexpr std::array<std::string_view, 2> token_prefixes() { return {"gAAAAA", "Z0FBQUFB"}; }

// True when `value` is exactly one token's text as stored: url-safe base64
// alphabet characters [A-Za-z0-9_-] only, then at most two '='. One pass.
bool is_single_token_text(std::string_view value);

// A token's place in a value: bytes [begin, end).
struct TokenSpan {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool operator==(const TokenSpan& other) const { return begin == other.begin && end == other.end; }
};

enum class Boundaries {
  kClear,    // every token found has a clear start and end
  kUnclear,  // a token prefix follows an alphabet character: where a token starts cannot be told
};

struct SpanScan {
  Boundaries boundaries = Boundaries::kClear;
  std::vector<TokenSpan> spans;  // in order, disjoint; empty when kUnclear
};

// Finds the tokens embedded in `value`. A span starts where a run of alphabet
// characters starts with a token prefix and covers the run, then the '='
// padding that the run's length calls for (two after 4n+2 characters, one
// after 4n+3), as many of those as are there. A prefix inside a run, not at
// its start, makes the boundaries kUnclear. Every span is itself
// is_single_token_text. One pass over `value`.
SpanScan find_token_spans(std::string_view value);

}  // namespace rekey::crypto
