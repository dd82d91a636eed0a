// Building SQL text and parameters for a target table. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/hex.h"
#include "db/sql_arrays.h"
#include "migrate/table_port.h"

namespace rekey::db {

// ONLY "schema"."table", always quoted: the rows this relation stores itself,
// never those of its inheritance children (each child is a target of its own,
// see resolve_table), which may repeat its keys.
std::string only_relation(const TableShape& shape);

// `"k1", "k2"` (with an optional alias prefix such as "t.").
std::string key_list(const TableShape& shape, std::string_view prefix = "");

// `alias.k = source.k0::type AND ...`: the row of `alias` whose key is the
// text key in columns k0, k1, ... of `source` (with each key column's own
// equality operator).
std::string key_match(const TableShape& shape, std::string_view alias, std::string_view source);

// ` JOIN pg_catalog.unnest($first::text[], ...) WITH ORDINALITY AS v(k0, ...,
// ord) ON ...`: the rows of `alias` whose keys are in the arrays that
// key_arrays() makes (parameters $first...), with v.ord each key's position.
// A relation without a primary key is matched by ctid.
std::string join_keys(const TableShape& shape, std::string_view alias, std::size_t first_param);

// The parameters of join_keys(): one text array per key column (the ctid for
// a relation without a primary key).
std::vector<std::string> key_arrays(const TableShape& shape, const std::vector<KeyValues>& keys);

// `(alias.k1, alias.k2) > ($first::type1, $first+1::type2)`: the rows after a
// key (given as text in parameters $first...) in the primary key's order, with
// each key column's own operators. One row comparison, which the primary-key
// index serves as one range, when every column's ">" is the same operator
// name; otherwise the same order spelled out column by column, led by the
// first column's ">=" so that the index still finds where to start.
std::string key_after(const TableShape& shape, std::string_view alias, std::size_t first_param);

// `(alias.k1, alias.k2) <= ($first::type1, ...)`: the rows up to and
// including a key, as key_after() spells the rows after one (led by the first
// column's "<=" when the columns' operators differ).
std::string key_up_to(const TableShape& shape, std::string_view alias, std::size_t first_param);

// The signs of a value that may hold a token (crypto::TokenSigns), for a
// filter on the server.
struct TokenFilter {
  std::vector<std::string> anywhere;  // letters and digits: a token holds one of them anywhere
  std::string first_chars;            // letters: a whole-value token starts with one of them...
  std::size_t min_whole_length = 0;   // ...and is at least this long
};

// A WHERE condition true when any of `shape`'s columns (read via `alias`)
// shows a sign of `filter`. Throws std::invalid_argument for a filter without
// a sign, or a sign that is not letters and digits.
std::string holds_token_sign(const TableShape& shape, const TokenFilter& filter, std::string_view alias);

// SELECT of the key (as text; ctid for a shape without key columns) and the
// target columns, then `more` (select-list items, if any), FROM ONLY the
// relation, ending before any WHERE.
std::string select_rows(const TableShape& shape, std::string_view alias, std::string_view more = "");

// select_rows() for a scan that reads long values apart: each value longer
// than `max_value_bytes` comes as NULL, and after the values comes each
// value's octet_length (NULL for NULL), by which a left-out value is told from
// a NULL one and read later by its row's key (join_keys()).
std::string select_short_values(const TableShape& shape, std::string_view alias, std::size_t max_value_bytes);

// Whether rows_within() also tells how many rows there were before the cut
// (which reads every row the query finds, up to its LIMIT).
enum class CountRows { kNo, kYes };

// The rows of select_rows(shape, alias) + `tail` (joins, WHERE; no ORDER BY)
// in the order of the SQL expressions `order`, at most `max_rows` of them (0:
// no limit), cut on the server to ReadLimit::bytes = `max_bytes` by the
// octet_length of their values, which PostgreSQL knows without detoasting
// them. After the values each row has the fields `order`, then with
// CountRows::kYes the number of rows before the cut, then the bytes before it.
std::string rows_within(const TableShape& shape, std::string_view alias, const std::vector<std::string>& order,
                        const std::string& tail, CountRows count, std::size_t max_rows, std::size_t max_bytes);

// Whether the batch UPDATE waits for rows other transactions hold locked, or
// leaves them out (they come back as not applied, as a lost compare-and-swap
// does) instead.
enum class RowLocks { kWait, kSkipLocked };

// The batch UPDATE of PgTableWriter. Parameters, each a text[] with one element
// per row of the batch: the key columns (as text), then for each target column
// the value read and its replacement (NULL for both: leave the cell alone;
// bytea as hex). A row is updated only where every cell being replaced still
// holds the value read. RETURNING gives, for each row updated, its position in
// the batch (1-based): rows are matched by position, never by the text of
// their key, which need not come back as it was sent.
std::string build_update(const TableShape& shape, RowLocks locks);

// The parameters of build_update() for `updates`, in its order, each a
// binary_text_array().
std::vector<std::string> update_arrays(const TableShape& shape, const std::vector<RowUpdate>& updates);

}  // namespace rekey::db
