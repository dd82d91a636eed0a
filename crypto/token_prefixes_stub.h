// TEMPORARY until the crypto-spans branch is merged.
#pragma once
#include <string>
#include <string_view>
#include <vector>
namespace rekey::crypto {
inline const std::vector<std::string>& token_prefixes() {
  static const std::vector<std::string> p = {"gAAAAA", "Z0FBQUFB"};
  return p;
}
inline bool holds_token_prefix(std::string_view value) {
  for (const auto& p : token_prefixes()) {
    if (value.find(p) != std::string_view::npos) return true;
  }
  return false;
}
}  // namespace rekey::crypto
