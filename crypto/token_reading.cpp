#include "crypto/token_reading.h"

#include <algorithm>

#include "crypto/base64.h"
#include "crypto/token_signs.h"

namespace rekey::crypto {
namespace {

bool is_data_char(std::uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '+' || c == '/';
}

// The format of `text` read as one token, structure only.
std::optional<ValueFormat> format_of_one(std::string_view text) {
  const Readings r = locate(text);
  if (r.plain.error == TokenError::kNone) return ValueFormat::kPlain;
  if (r.has_wrapped && r.wrapped.error == TokenError::kNone) return ValueFormat::kWrapped;
  return std::nullopt;
}

bool run_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '=';
}

// True when a run of base64 text in [from, to) of `stored` is a whole token.
bool token_between(std::string_view stored, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to;) {
    while (i < to && !run_char(stored[i])) ++i;
    std::size_t j = i;
    while (j < to && run_char(stored[j])) ++j;
    if (j > i && is_whole_token(stored.substr(i, j - i))) return true;
    i = j;
  }
  return false;
}

}  // namespace

const char* to_string(ValueFormat format) { return format == ValueFormat::kPlain ? "plain" : "wrapped"; }

Readings locate(std::string_view stored) {
  Readings r;
  r.wrapped.format = ValueFormat::kWrapped;
  std::vector<std::uint8_t> outer;
  if (!base64url_decode_lenient(stored, outer)) {
    r.plain.error = TokenError::kBadBase64;
    return r;
  }
  const auto first = std::find_if(outer.begin(), outer.end(), is_data_char);
  if (first != outer.end() && *first == 'g') {
    r.has_wrapped = true;
    r.wrapped.error = ParsedToken::parse(std::string_view(reinterpret_cast<const char*>(outer.data()), outer.size()),
                                         r.wrapped.token);
  }
  r.plain.error = ParsedToken::from_bytes(std::move(outer), r.plain.token);
  return r;
}

// True when, beside `spans`, `stored` holds a token without a prefix (a
// timestamp of 2^36 or more): rotating the others would leave it behind.
bool hides_a_token(std::string_view stored, const std::vector<TokenSpan>& spans) {
  if (spans.empty()) return false;
  std::size_t from = 0;
  for (const TokenSpan& span : spans) {
    if (token_between(stored, from, span.begin)) return true;
    from = span.end;
  }
  return token_between(stored, from, stored.size());
}

std::optional<ValueFormat> token_format(std::string_view stored) {
  if (is_single_token_text(stored)) return format_of_one(stored);
  const SpanScan scan = find_token_spans(stored);
  if (scan.boundaries == Boundaries::kUnclear || hides_a_token(stored, scan.spans)) return std::nullopt;
  if (scan.spans.empty()) return format_of_one(stored);
  for (const TokenSpan& span : scan.spans) {
    if (const auto format = format_of_one(stored.substr(span.begin, span.end - span.begin))) return format;
  }
  return std::nullopt;
}

}  // namespace rekey::crypto
