// The engine's view of a target table: how it reads rows and writes a batch.
// db/ implements these against PostgreSQL; tests implement them in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace rekey {

// A primary key: one text value per key column, in key order.
using KeyValues = std::vector<std::string>;

enum class ColumnKind { kText, kBytea };

// Which values of a column a rotation or a census deals with.
enum class ValuePolicy {
  kEveryValue,       // named by the operator: every non-NULL value must be tokens; anything else is a failure
  kValuesWithToken,  // found by discovery: the values holding a token prefix; the rest is left alone (no_token)
};

// How a key column compares, from the operator class of the primary key's
// index: each operator as SQL, OPERATOR(schema.name). rekey's sessions search
// only pg_catalog, so the operators of an extension's type (citext, say) must
// be named with their schema, or the key would be compared as another type.
struct KeyOperators {
  std::string less;              // btree strategy 1
  std::string less_or_equal;     // strategy 2
  std::string equal;             // strategy 3
  std::string greater_or_equal;  // strategy 4
  std::string greater;           // strategy 5
};

// A target table as resolved from the catalog.
struct TableShape {
  std::string schema;
  std::string table;
  std::vector<std::string> key_columns;
  std::vector<std::string> key_types;       // format_type() of each key column
  std::vector<KeyOperators> key_operators;  // one per key column
  std::vector<std::string> columns;         // the encrypted columns being handled
  std::vector<ColumnKind> kinds;
  std::vector<ValuePolicy> policies;  // one per column; a missing one is kEveryValue
  double estimated_rows = 0;

  // This shape with only `column` (its kind and policy).
  TableShape column_shape(std::size_t column) const;

  ValuePolicy policy(std::size_t column) const {
    return column < policies.size() ? policies[column] : ValuePolicy::kEveryValue;
  }

  // "schema.table" with identifiers quoted where SQL requires it.
  std::string display_name() const;
  std::string column_display(std::size_t column) const;
};

// Renders a key for messages and the failures table: the value itself for a
// one-column key, its key_to_json() otherwise.
std::string key_display(const KeyValues& key);

// A key as JSON, losslessly, as the state schema stores checkpoints and
// pending rows: an array with one element per key column, its text when that
// is UTF-8, else {"hex": "<its bytes>"} (a key of a SQL_ASCII database).
nlohmann::json key_to_json(const KeyValues& key);
// The inverse; throws (nlohmann::json::exception, std::invalid_argument) on any other shape.
KeyValues key_from_json(const nlohmann::json& j);

struct Row {
  KeyValues key;
  std::vector<std::optional<std::string>> values;  // one per TableShape::columns; bytea as raw bytes
};

struct ColumnCounts {
  std::int64_t rotated = 0;
  std::int64_t already_new = 0;
  std::int64_t null = 0;
  std::int64_t undecryptable = 0;
  std::int64_t changed_concurrently = 0;
  std::int64_t no_token = 0;  // values of a discovered column holding no token: left alone

  ColumnCounts& operator+=(const ColumnCounts& o);
  friend ColumnCounts operator+(ColumnCounts a, const ColumnCounts& b) { return a += b; }
};

// JSON form {rotated, already_new, null, undecryptable, changed_concurrently, no_token},
// as the state schema, reports and status use it; missing fields read as 0.
void to_json(nlohmann::json& j, const ColumnCounts& c);
void from_json(const nlohmann::json& j, ColumnCounts& c);

// An update of one row: for each column, nothing, or the value read (for the
// compare-and-swap) and its replacement.
struct RowUpdate {
  KeyValues key;
  struct Cell {
    std::string old_value;
    std::string new_value;
  };
  std::vector<std::optional<Cell>> cells;  // one per TableShape::columns
};

struct Failure {
  KeyValues key;
  std::size_t column = 0;
  std::string reason;
};

// Everything one transaction writes: the data, and the state that describes it.
struct BatchWrite {
  std::vector<RowUpdate> updates;
  std::vector<Failure> failures;
  std::vector<ColumnCounts> counts;         // deltas, one per column
  std::optional<KeyValues> checkpoint;      // last key of a keyset batch
  std::vector<KeyValues> resolved_pending;  // re-read rows this batch settles
  std::vector<KeyValues> vanished_pending;  // pending rows not found when read again: kept, marked not found
  bool reread = false;                      // a batch of pending rows, read again
  // Leave out rows the application holds locked (they come back as not
  // applied, and are read again later) instead of waiting for their locks.
  bool skip_locked = false;
  std::int64_t rows_seen = 0;
};

// The counts `batch` stands for once its writer knows which of its updates
// did not apply (`lost`, indexes into batch.updates): a cell of a lost update
// is not rotated, and counts as changed concurrently once, when its row was
// first read (a re-read that loses again adds nothing). The one rule by which
// both the engine's outcome and the writer's stored counts are kept.
std::vector<ColumnCounts> counts_applied(const BatchWrite& batch, const std::vector<std::size_t>& lost);

// How much one read returns at most: `rows` rows, and rows only while the
// values (of the target columns) before them hold fewer than `bytes` bytes, so
// at most `bytes` plus one row's values; always one row at least, while any
// is left.
struct ReadLimit {
  std::size_t rows = 0;
  std::size_t bytes = 0;
};

// What one read of a pipeline with `threads` workers may hold, when the
// batches in flight (threads + 2: one being read, one written, one per
// worker) share `batch_bytes`: `rows` rows, and its share of the bytes (one
// byte at least).
ReadLimit batch_share(std::size_t rows, std::size_t batch_bytes, std::size_t threads);

// The keys of a table's rows from just after `after` (from the first when
// nullopt) up to and including `up_to` (to the last when nullopt), in the
// primary key's order: the whole table, what is left of it after a
// checkpoint, or one chunk of it.
struct KeyRange {
  std::optional<KeyValues> after;
  std::optional<KeyValues> up_to;
};

// The rows read for the first `keys_read` keys of a list (in that order); a
// key among them without a row has none any more.
struct KeyedRows {
  std::vector<Row> rows;
  std::size_t keys_read = 0;
};

class TableReader {
 public:
  virtual ~TableReader() = default;
  // The first rows of `range`, in key order, up to `limit`; each read is its
  // own short transaction.
  virtual std::vector<Row> read_range(const KeyRange& range, const ReadLimit& limit) = 0;
  // The rows that still exist of the first of `keys`, in order, whose values
  // fit in `max_bytes` (as ReadLimit::bytes; one key at least).
  virtual KeyedRows read_keys(const std::vector<KeyValues>& keys, std::size_t max_bytes) = 0;
};

// Every row of one relation, read once in batches from one snapshot: the
// census's view of a table. Needs no primary key. Owned by one thread.
class RowScanner {
 public:
  virtual ~RowScanner() = default;
  // The next rows within `limit` (at least one while any are left; empty at
  // the end). Row::key is the primary key, or {ctid} for a relation without
  // one. Throws on database errors; the scan cannot continue after one.
  virtual std::vector<Row> next(const ReadLimit& limit) = 0;
};

class TableWriter {
 public:
  virtual ~TableWriter() = default;
  // Applies `batch` in one transaction: each update only where every changed
  // cell still holds its old value, the failures, counts and checkpoint;
  // removes resolved_pending from the pending rows and marks vanished_pending
  // as not found (no longer listed by pending()), then adds the rows whose
  // update did not apply (to be read again).
  // Returns the indexes of updates that did not apply. On an exception nothing
  // of the batch was committed, or (commit outcome unknown) all of it was.
  virtual std::vector<std::size_t> write(const BatchWrite& batch) = 0;
  // Pending rows of this table: updates that lost a compare-and-swap.
  virtual std::vector<KeyValues> pending() = 0;
};

}  // namespace rekey
