#include "db/sql_text.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "db/identifier.h"

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

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string qualified(const TableShape& shape) { return quote_ident(shape.schema) + "." + quote_ident(shape.table); }

std::string key_list(const TableShape& shape, std::string_view prefix) {
  std::string out;
  for (std::size_t i = 0; i < shape.key_columns.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::string(prefix) + quote_ident(shape.key_columns[i]);
  }
  return out;
}

std::string key_token(const KeyValues& key) {
  std::string out;
  for (const auto& part : key) {
    out += part;
    out += '\x1f';
  }
  return out;
}

namespace {
bool alphanumeric(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}
}  // namespace

std::string holds_token_sign(const TableShape& shape, const TokenFilter& filter, std::string_view alias) {
  if ((filter.anywhere.empty() && filter.first_chars.empty()) ||
      !std::all_of(filter.anywhere.begin(), filter.anywhere.end(), alphanumeric) ||
      (!filter.first_chars.empty() && !alphanumeric(filter.first_chars))) {
    throw std::invalid_argument("a token filter needs signs of letters and digits");
  }
  std::string out;
  for (std::size_t c = 0; c < shape.columns.size(); ++c) {
    const bool bytea = shape.kinds[c] == ColumnKind::kBytea;
    const std::string column = std::string(alias) + "." + quote_ident(shape.columns[c]);
    const std::string text = bytea ? column : column + "::pg_catalog.text";
    for (const auto& sign : filter.anywhere) {
      out += (out.empty() ? "" : " OR ") +
             (bytea ? "pg_catalog.position(" + column + ", pg_catalog.decode('" + to_hex(sign) + "', 'hex')) > 0"
                    : "pg_catalog.strpos(" + text + ", '" + sign + "') > 0");
    }
    for (const char first : filter.first_chars) {
      const std::string head = bytea ? "pg_catalog.substring(" + column + ", 1, 1) = pg_catalog.decode('" +
                                           to_hex(std::string(1, first)) + "', 'hex')"
                                     : "pg_catalog.left(" + text + ", 1) = '" + std::string(1, first) + "'";
      out += (out.empty() ? "(" : " OR (") + head + " AND pg_catalog.octet_length(" + text +
             ") >= " + std::to_string(filter.min_whole_length) + ")";
    }
  }
  return "(" + out + ")";
}

std::string select_rows(const TableShape& shape, std::string_view alias) {
  const std::string prefix = std::string(alias) + ".";
  std::string sql = "SELECT ";
  for (const auto& k : shape.key_columns) sql += prefix + quote_ident(k) + "::text, ";
  for (std::size_t i = 0; i < shape.columns.size(); ++i) {
    if (i > 0) sql += ", ";
    // As text: a char(n) value comes without its blank padding, so the
    // compare-and-swap (bpchar = text compares unpadded) sees the value it read.
    sql += prefix + quote_ident(shape.columns[i]) + (shape.kinds[i] == ColumnKind::kText ? "::text" : "");
  }
  return sql + " FROM " + qualified(shape) + " AS " + std::string(alias);
}

}  // namespace rekey::db
