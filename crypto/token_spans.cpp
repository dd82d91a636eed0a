#include "crypto/token_spans.h"

namespace rekey::crypto {
namespace {

// [A-Za-z0-9_-], without branches so that a loop over it vectorizes.
constexpr bool is_alphabet(unsigned char c) {
  return (static_cast<unsigned char>((c | 0x20) - 'a') < 26) | (static_cast<unsigned char>(c - '0') < 10) | (c == '-') |
         (c == '_');
}

bool is_alphabet_at(std::string_view value, std::size_t i) { return is_alphabet(static_cast<unsigned char>(value[i])); }

// `at` < value.size().
bool starts_with_prefix(std::string_view value, std::size_t at) {
  for (const std::string_view prefix : token_prefixes()) {
    if (value[at] == prefix[0] && value.compare(at, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

// How many '=' complete a run of `length` alphabet characters.
std::size_t padding_for(std::size_t length) {
  switch (length % 4) {
    case 2:
      return 2;
    case 3:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

bool is_single_token_text(std::string_view value) {
  std::size_t data = value.size();
  for (int pads = 0; pads < 2 && data > 0 && value[data - 1] == '='; ++pads) --data;
  bool all = true;
  for (std::size_t i = 0; i < data; ++i) all &= is_alphabet_at(value, i);
  return all;
}

SpanScan find_token_spans(std::string_view value) {
  SpanScan scan;
  std::size_t i = 0;
  while (i < value.size()) {
    if (!is_alphabet_at(value, i)) {
      ++i;
      continue;
    }
    const std::size_t run = i;
    for (++i; i < value.size() && is_alphabet_at(value, i); ++i) {
      if (starts_with_prefix(value, i)) return SpanScan{Boundaries::kUnclear, {}};
    }
    if (!starts_with_prefix(value, run)) continue;
    for (std::size_t pads = padding_for(i - run); pads > 0 && i < value.size() && value[i] == '='; --pads) ++i;
    scan.spans.push_back(TokenSpan{run, i});
  }
  return scan;
}

}  // namespace rekey::crypto
