// Building SQL text and parameters for a target table. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "migrate/table_port.h"

namespace rekey::db {

// A PostgreSQL array literal of text ('{"a","b",NULL}'), for a $n::text[] parameter.
std::string text_array(const std::vector<std::optional<std::string>>& values);
std::string text_array(const std::vector<std::string>& values);

// The same as a binary-format text[] parameter (PostgreSQL's array_send
// layout): the server copies the elements instead of parsing a literal,
// which measured several times faster for thousands of tokens.
std::string binary_text_array(const std::vector<std::optional<std::string>>& values);
std::string binary_text_array(const std::vector<std::string>& values);

// Lower-case hex of raw bytes, for decode(x, 'hex').
std::string to_hex(std::string_view bytes);

// "schema"."table", always quoted.
std::string qualified(const TableShape& shape);

// `"k1", "k2"` (with an optional alias prefix such as "t.").
std::string key_list(const TableShape& shape, std::string_view prefix = "");

// One string for a key, usable as a map key.
std::string key_token(const KeyValues& key);

// The signs of a value that may hold a token (crypto::TokenSigns), for a
// filter on the server.
struct TokenFilter {
  std::vector<std::string> anywhere;  // letters and digits: a token holds one of them anywhere
  std::string first_chars;            // letters: a whole-value token starts with one of them...
  std::size_t min_whole_length = 0;   // ...and is at least this long
};

// A WHERE condition true when any of `shape`'s columns (read via `alias`)
// shows a sign of `filter`. Throws std::invalid_argument for a filter without
// a sign, or a sign that is not letters and digits.
std::string holds_token_sign(const TableShape& shape, const TokenFilter& filter, std::string_view alias);

// SELECT of the key (as text) and the target columns, ending before any WHERE.
std::string select_rows(const TableShape& shape, std::string_view alias);

}  // namespace rekey::db
