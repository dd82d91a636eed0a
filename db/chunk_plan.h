// Planning the chunks of one relation: the keys that cut its rows into key
// ranges (migrate/table_port.h KeyRange) of about a given number of rows, for
// writer lanes to claim one by one. Reads a sample, never the whole relation.
#pragma once

#include <cstddef>
#include <pqxx/connection>
#include <vector>

#include "migrate/table_port.h"

namespace rekey::db {

struct ChunkPlanSettings {
  std::size_t rows_per_chunk = 100000;    // about this many rows a chunk, at most (0 counts as 1)
  std::size_t min_chunks = 1;             // at least this many chunks for a range with enough rows...
  std::size_t min_rows_per_chunk = 1000;  // ...that is, min_chunks times this many (0 counts as 1)
};

// The upper bounds that cut the rows of `shape` in `range` (keys after
// range.after, up to range.up_to) into chunks of about settings.rows_per_chunk
// rows (the fewest chunks of at most about that many), and into at least
// settings.min_chunks chunks when the range holds at least min_chunks *
// min_rows_per_chunk rows: strictly increasing keys in the primary key's order
// (its index's operators), each the key of a row that existed when sampled,
// all inside `range` (never its last key, so no chunk is empty by
// construction; a chunk may still empty out as rows are deleted). Chunk i
// covers (bound[i-1], bound[i]], the first starts after range.after, the last
// ends at range.up_to, so every key of the range falls in exactly one chunk,
// whatever the sample. Empty when one chunk suffices: an empty or small range,
// or a shape without key columns (never chunked).
//
// Reads only, in one short READ ONLY REPEATABLE READ transaction on `conn`
// (its own: none may be open on it), with `FROM ONLY` the relation itself: a
// sample of its pages (TABLESAMPLE SYSTEM, sized from pg_class.reltuples and
// relpages as the planner scales them to the relation's current size), or all
// of a relation of a few MiB. So the chunk sizes are estimates, rougher for a
// range that is a small part of a large relation; see chunk_plan.cpp for the
// sample's size. `conn` must come from connect() (connection.h): keys come
// back as text under its pinned settings and are cast back with
// shape.key_types. Not thread-safe (one connection, one thread). Throws pqxx
// errors (an unknown relation: pqxx::undefined_table).
std::vector<KeyValues> plan_chunk_bounds(pqxx::connection& conn, const TableShape& shape, const KeyRange& range,
                                         const ChunkPlanSettings& settings);

}  // namespace rekey::db
