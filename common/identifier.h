// SQL identifiers: parsing operator-written names and quoting them for SQL.
// Pure functions, thread-safe; no database access.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rekey {

// Always double-quoted, with embedded quotes doubled: safe in any SQL text.
std::string quote_ident(std::string_view name);

// Unquoted when PostgreSQL would read it back unchanged (lower case, no
// special characters, not a keyword), quoted otherwise. For display.
std::string quote_ident_if_needed(std::string_view name);

// schema.table and schema.table.column as rekey shows them (reports, logs,
// the runs table's targets): each part by quote_ident_if_needed.
std::string display_name(std::string_view schema, std::string_view table);
std::string display_name(std::string_view schema, std::string_view table, std::string_view column);

// A column of a table already in display form (display_name(schema, table)).
std::string column_display(std::string_view table_display, std::string_view column);

// Throws std::invalid_argument naming `what` when `name` holds a control
// character (a newline could end a comment or forge a log line): no
// identifier rekey accepts may.
void check_no_control_characters(std::string_view name, std::string_view what);

// Splits a dotted name by SQL rules: unquoted parts fold to lower case,
// "quoted" parts keep their case, spaces and dots ("" is a quote). Throws
// std::invalid_argument with a message naming `text` if it is malformed or
// holds a control character.
std::vector<std::string> split_qualified_name(std::string_view text);

struct ColumnRef {
  std::string schema;
  std::string table;
  std::string column;
};

// [SCHEMA.]TABLE.COLUMN; schema defaults to "public".
ColumnRef parse_column_ref(std::string_view text);

}  // namespace rekey
