#include "db/sql_arrays.h"

#include <cstdint>
#include <string_view>

namespace rekey::db {

namespace {
void append_element(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}
}  // namespace

std::string text_array(const std::vector<std::optional<std::string>>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    if (values[i]) {
      append_element(out, *values[i]);
    } else {
      out += "NULL";
    }
  }
  out += '}';
  return out;
}

std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    append_element(out, values[i]);
  }
  out += '}';
  return out;
}

namespace {
constexpr std::uint32_t kTextOid = 25;

void put_be32(std::string& out, std::uint32_t v) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                         static_cast<char>(v)};
  out.append(bytes, 4);
}

template <typename Get>
std::string binary_array(std::size_t n, bool has_null, Get get) {
  std::string out;
  put_be32(out, n == 0 ? 0 : 1);  // dimensions
  put_be32(out, has_null ? 1 : 0);
  put_be32(out, kTextOid);
  if (n == 0) return out;
  put_be32(out, static_cast<std::uint32_t>(n));  // length of the one dimension
  put_be32(out, 1);                              // lower bound
  for (std::size_t i = 0; i < n; ++i) {
    const std::string* v = get(i);
    if (v == nullptr) {
      put_be32(out, 0xffffffffu);  // -1: NULL
      continue;
    }
    put_be32(out, static_cast<std::uint32_t>(v->size()));
    out += *v;
  }
  return out;
}
}  // namespace

std::string binary_text_array(const std::vector<std::optional<std::string>>& values) {
  bool has_null = false;
  for (const auto& v : values) has_null = has_null || !v;
  return binary_array(values.size(), has_null, [&](std::size_t i) {
    return values[i] ? &*values[i] : static_cast<const std::string*>(nullptr);
  });
}

std::string binary_text_array(const std::vector<std::string>& values) {
  return binary_array(values.size(), false, [&](std::size_t i) { return &values[i]; });
}

}  // namespace rekey::db
