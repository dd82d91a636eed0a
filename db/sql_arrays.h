// Text arrays as query parameters: a literal, or PostgreSQL's binary array
// layout. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace rekey::db {

// A PostgreSQL array literal of text ('{"a","b",NULL}'), for a $n::text[] parameter.
std::string text_array(const std::vector<std::optional<std::string>>& values);
std::string text_array(const std::vector<std::string>& values);

// The same as a binary-format text[] parameter (PostgreSQL's array_send
// layout): the server copies the elements instead of parsing a literal,
// which measured several times faster for thousands of tokens.
std::string binary_text_array(const std::vector<std::optional<std::string>>& values);
std::string binary_text_array(const std::vector<std::string>& values);

}  // namespace rekey::db
