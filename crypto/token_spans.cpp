#include "crypto/token_spans.h"

#include <cstdint>

namespace rekey::crypto {
namespace {

// 0 for a byte in [A-Za-z0-9_-], 0xff for any other: byte masks, not bools,
// so that a loop over them vectorizes.
constexpr std::uint8_t outside_alphabet(std::uint8_t c) {
  const std::uint8_t letter = static_cast<std::uint8_t>((c | 0x20) - 'a') < 26 ? 0xff : 0;
  const std::uint8_t digit = static_cast<std::uint8_t>(c - '0') < 10 ? 0xff : 0;
  const std::uint8_t dash = c == '-' ? 0xff : 0;
  const std::uint8_t underscore = c == '_' ? 0xff : 0;
  return static_cast<std::uint8_t>(~(letter | digit | dash | underscore));
}

bool is_alphabet_at(std::string_view value, std::size_t i) {
  return outside_alphabet(static_cast<std::uint8_t>(value[i])) == 0;
}

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
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(value.data());
  std::uint8_t outside = 0;
  for (std::size_t i = 0; i < data; ++i) outside |= outside_alphabet(bytes[i]);
  return outside == 0;
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
