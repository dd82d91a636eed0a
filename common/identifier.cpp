#include "common/identifier.h"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace rekey {
namespace {

// Reserved words that cannot stand unquoted as a column or table name.
constexpr std::array<std::string_view, 40> kReserved = {
    "all",   "analyse", "analyze",    "and",    "any",     "array",  "as",       "asc", "both", "case",
    "check", "column",  "constraint", "create", "default", "desc",   "distinct", "do",  "else", "end",
    "false", "for",     "foreign",    "from",   "grant",   "group",  "having",   "in",  "into", "limit",
    "not",   "null",    "or",         "order",  "primary", "select", "table",    "to",  "user", "where"};

bool is_plain(std::string_view name) {
  if (name.empty()) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_')) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$')) return false;
  }
  return std::find(kReserved.begin(), kReserved.end(), name) == kReserved.end();
}

}  // namespace

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_ident_if_needed(std::string_view name) {
  return is_plain(name) ? std::string(name) : quote_ident(name);
}

std::string display_name(std::string_view schema, std::string_view table) {
  return quote_ident_if_needed(schema) + "." + quote_ident_if_needed(table);
}

std::string display_name(std::string_view schema, std::string_view table, std::string_view column) {
  return column_display(display_name(schema, table), column);
}

std::string column_display(std::string_view table_display, std::string_view column) {
  return std::string(table_display) + "." + quote_ident_if_needed(column);
}

void check_no_control_characters(std::string_view name, std::string_view what) {
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      throw std::invalid_argument(std::string(what) + " must not contain control characters (newline, tab, ...)");
    }
  }
}

std::vector<std::string> split_qualified_name(std::string_view text) {
  check_no_control_characters(text, "a name");
  const auto bad = [&](const char* why) {
    return std::invalid_argument("bad name '" + std::string(text) + "': " + why);
  };
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (true) {
    std::string part;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            part += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        part += text[i++];
      }
      if (!closed) throw bad("unterminated quoted identifier");
      if (part.empty()) throw bad("empty quoted identifier");
    } else {
      while (i < text.size() && text[i] != '.') {
        const char c = text[i++];
        if (c == '"' || c == ' ' || c == '\t') throw bad("unexpected quote or space; quote the whole identifier");
        part += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      }
      if (part.empty()) throw bad("empty identifier");
    }
    parts.push_back(part);
    if (i == text.size()) break;
    if (text[i] != '.') throw bad("expected '.' after a quoted identifier");
    ++i;
  }
  return parts;
}

ColumnRef parse_column_ref(std::string_view text) {
  const auto parts = split_qualified_name(text);
  if (parts.size() == 2) return {"public", parts[0], parts[1]};
  if (parts.size() == 3) return {parts[0], parts[1], parts[2]};
  throw std::invalid_argument("bad column '" + std::string(text) + "': expected [SCHEMA.]TABLE.COLUMN");
}

}  // namespace rekey
