#include "crypto/token_signs.h"

#include <cstdint>

#include "crypto/base64.h"
#include "crypto/token_spans.h"

namespace rekey::crypto {
namespace {

constexpr std::size_t kShortestToken = 73;  // version, timestamp, IV, one AES block, HMAC
constexpr std::size_t kShortestTokenText = (kShortestToken + 2) / 3 * 4;

// Token bytes: version 0x80, timestamp, IV, whole AES blocks, HMAC.
bool token_bytes(const std::vector<std::uint8_t>& b) {
  return b.size() >= kShortestToken && (b.size() - (kShortestToken - 16)) % 16 == 0 && b[0] == 0x80;
}

}  // namespace

const TokenSigns& token_signs() {
  static const TokenSigns signs = [] {
    TokenSigns s;
    for (const auto p : token_prefixes()) s.anywhere.emplace_back(p);
    s.first_chars = "gZ";
    s.min_whole_length = kShortestTokenText;
    return s;
  }();
  return signs;
}

bool is_whole_token(std::string_view value) {
  std::vector<std::uint8_t> outer;
  if (!is_single_token_text(value) || !base64url_decode_lenient(value, outer)) return false;
  if (token_bytes(outer)) return true;
  const std::string_view inner_text(reinterpret_cast<const char*>(outer.data()), outer.size());
  std::vector<std::uint8_t> inner;
  return is_single_token_text(inner_text) && base64url_decode_lenient(inner_text, inner) && token_bytes(inner);
}

bool holds_token_prefix(std::string_view value) {
  for (const auto p : token_prefixes()) {
    if (value.find(p) != std::string_view::npos) return true;
  }
  return false;
}

bool holds_token(std::string_view value) { return holds_token_prefix(value) || is_whole_token(value); }

}  // namespace rekey::crypto
