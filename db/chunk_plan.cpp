#include "db/chunk_plan.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "common/identifier.h"
#include "db/sql_text.h"

namespace rekey::db {
namespace {

// How much a plan reads. A chunk's size is known to about as many sampled
// pages as the sample holds of it: kPagesPerChunk gives about ±12% when the
// keys follow the physical order (pages of consecutive keys), far better when
// they do not. A relation of kMinSamplePages pages or fewer is read whole; no
// sample is larger than kMaxSamplePages, however many chunks (a billion rows
// cut in chunks of 100000 get about 2 sampled pages a chunk).
constexpr double kMinSamplePages = 512;    // 4 MiB of 8 KiB pages
constexpr double kPagesPerChunk = 64;      // sampled pages per planned chunk
constexpr double kMaxSamplePages = 16384;  // 128 MiB of 8 KiB pages

// Every statement of a plan samples with this seed: in the plan's one
// snapshot, the same percentage gives the same rows.
constexpr const char* kSampleSeed = "0";

struct RelationSize {
  double pages = 0;            // now
  std::optional<double> rows;  // reltuples per relpages times pages; nullopt when never vacuumed or analyzed
};

// The relation's size now, and its rows as the planner estimates them.
RelationSize relation_size(pqxx::transaction_base& tx, const TableShape& shape) {
  const pqxx::row r = tx.exec_params1(
      "SELECT c.reltuples::pg_catalog.float8, c.relpages::pg_catalog.float8, "
      "pg_catalog.pg_relation_size(c.oid)::pg_catalog.float8, "
      "pg_catalog.current_setting('block_size')::pg_catalog.float8 FROM pg_catalog.pg_class AS c "
      "WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass::pg_catalog.oid",
      quote_ident(shape.schema) + "." + quote_ident(shape.table));
  const double reltuples = r[0].as<double>();
  const double relpages = r[1].as<double>();
  RelationSize size;
  size.pages = r[2].as<double>() / r[3].as<double>();
  // reltuples is -1 (and relpages 0) before the first VACUUM or ANALYZE.
  if (relpages > 0 && reltuples >= 0) size.rows = reltuples / relpages * size.pages;
  return size;
}

// How a plan reads the range: from a sample of `percent` of the relation's
// pages (100: every row), at most its first `limit` rows in key order (0: all).
struct Read {
  double percent = 100;
  std::size_t limit = 0;
};

// The percentage of `pages` that holds kPagesPerChunk pages per chunk (within
// kMinSamplePages and kMaxSamplePages): 100 for a small relation.
double sample_percent(double pages, std::size_t chunks) {
  const double wanted = std::clamp(kPagesPerChunk * static_cast<double>(chunks), kMinSamplePages, kMaxSamplePages);
  if (pages <= wanted) return 100;
  // TABLESAMPLE takes a float4: the estimates divide by what the server uses.
  return static_cast<float>(100 * wanted / pages);
}

// The fewest chunks of at most rows_per_chunk rows that hold `rows` rows.
std::size_t chunks_by_size(double rows, const ChunkPlanSettings& s) {
  const double per_chunk = static_cast<double>(std::max<std::size_t>(1, s.rows_per_chunk));
  return static_cast<std::size_t>(std::max(1.0, std::ceil(rows / per_chunk)));
}

// The rows from which a range gets at least min_chunks chunks.
double min_chunks_rows(const ChunkPlanSettings& s) {
  return static_cast<double>(s.min_chunks) * static_cast<double>(std::max<std::size_t>(1, s.min_rows_per_chunk));
}

// How many chunks `rows` rows make: chunks_by_size(), and min_chunks when
// the rows reach min_chunks_rows().
std::size_t chunk_count(double rows, const ChunkPlanSettings& s) {
  const std::size_t by_size = chunks_by_size(rows, s);
  return rows >= min_chunks_rows(s) ? std::max(by_size, s.min_chunks) : by_size;
}

// The ranks (1-based, in key order) of the bounds that cut `rows` rows into
// `chunks` even parts: ceil(i * rows / chunks) for i in 1..chunks-1, fewer
// when there are fewer rows than chunks; each below `rows`, so that no chunk
// is empty.
std::vector<std::size_t> bound_ranks(std::size_t rows, std::size_t chunks) {
  std::vector<std::size_t> ranks;
  for (std::size_t i = 1; i < chunks; ++i) {
    const std::size_t rank = (i * rows + chunks - 1) / chunks;
    if (rank >= 1 && rank < rows && (ranks.empty() || rank > ranks.back())) ranks.push_back(rank);
  }
  return ranks;
}

// "t.k1 USING OPERATOR(s.<), ...": the primary key's index order.
std::string key_order(const TableShape& shape, const std::string& alias) {
  std::string out;
  for (std::size_t i = 0; i < shape.key_columns.size(); ++i) {
    out += (i > 0 ? ", " : "") + alias + "." + quote_ident(shape.key_columns[i]) + " USING " +
           shape.key_operators.at(i).less;
  }
  return out;
}

// A query's text and its parameters ($1 onwards, in order).
struct Query {
  std::string sql;
  std::vector<std::string> params;
  std::string next_param() const { return "$" + std::to_string(params.size() + 1); }
};

// SELECT of the keys (as they are, named by their columns) of the rows `read`
// reads of `range`, FROM ONLY the relation, as alias "t".
Query range_rows(const TableShape& shape, const KeyRange& range, const Read& read) {
  Query q;
  q.sql = "SELECT " + key_list(shape, "t.") + " FROM " + only_relation(shape) + " AS t";
  if (read.percent < 100) {
    q.sql += " TABLESAMPLE SYSTEM (" + q.next_param() + "::pg_catalog.float4) REPEATABLE (" + kSampleSeed + ")";
    q.params.push_back(pqxx::to_string(read.percent));
  }
  std::string where;
  for (const auto& [bound, spell] : {std::pair{&range.after, &key_after}, std::pair{&range.up_to, &key_up_to}}) {
    if (!*bound) continue;
    where += (where.empty() ? " WHERE (" : " AND (") + spell(shape, "t", q.params.size() + 1) + ")";
    q.params.insert(q.params.end(), (*bound)->begin(), (*bound)->end());
  }
  q.sql += where;
  if (read.limit > 0) q.sql += " ORDER BY " + key_order(shape, "t") + " LIMIT " + std::to_string(read.limit);
  return q;
}

// How many rows `read` reads of `range`.
std::size_t count_rows(pqxx::transaction_base& tx, const TableShape& shape, const KeyRange& range, const Read& read) {
  const Query rows = range_rows(shape, range, read);
  const std::string sql = "SELECT pg_catalog.count(*) FROM (" + rows.sql + ") AS r";
  return tx.exec_params1(sql, pqxx::prepare::make_dynamic_params(rows.params))[0].as<std::size_t>();
}

// The keys (as text) of the rows at `ranks` (1-based, increasing) among those
// `read` reads of `range`, in key order: distinct rows of one snapshot, so
// strictly increasing keys.
std::vector<KeyValues> keys_at(pqxx::transaction_base& tx, const TableShape& shape, const KeyRange& range,
                               const Read& read, const std::vector<std::size_t>& ranks) {
  Query rows = range_rows(shape, range, read);
  std::string keys;
  std::string list;
  for (std::size_t i = 0; i < shape.key_columns.size(); ++i) {
    keys += (i > 0 ? ", t." : "t.") + quote_ident(shape.key_columns[i]) + "::pg_catalog.text";
  }
  for (const std::size_t rank : ranks) list += (list.empty() ? "{" : ",") + std::to_string(rank);
  const std::string sql = "SELECT p.* FROM (SELECT " + keys + ", pg_catalog.row_number() OVER (ORDER BY " +
                          key_order(shape, "t") + ") AS rekey_rank FROM (" + rows.sql +
                          ") AS t) AS p WHERE p.rekey_rank OPERATOR(pg_catalog.=) ANY (" + rows.next_param() +
                          "::pg_catalog.int8[]) ORDER BY p.rekey_rank";
  rows.params.push_back(list + "}");
  std::vector<KeyValues> out;
  for (const auto& r : tx.exec_params(sql, pqxx::prepare::make_dynamic_params(rows.params))) {
    KeyValues key;
    for (std::size_t i = 0; i < shape.key_columns.size(); ++i) key.push_back(r[static_cast<int>(i)].as<std::string>());
    out.push_back(std::move(key));
  }
  return out;
}

// What a plan reads, the rows it found, the range's rows they stand for and
// the chunks those make.
struct Sample {
  Read read;
  std::size_t rows = 0;
  double estimate = 0;
  std::size_t chunks = 1;
};

Sample take_sample(pqxx::transaction_base& tx, const TableShape& shape, const KeyRange& range, const Read& read,
                   const ChunkPlanSettings& s) {
  Sample sample{read, count_rows(tx, shape, range, read), 0, 1};
  sample.estimate = static_cast<double>(sample.rows) * 100 / read.percent;
  sample.chunks = chunk_count(sample.estimate, s);
  return sample;
}

// The first sample is sized by the planner's estimate of the relation's rows;
// a second, larger one is taken when the first shows the range holds more
// than twice as many chunks as that sample has pages for. A relation never
// vacuumed or analyzed (reltuples -1) is neither counted nor read whole: its
// first sample has kMinSamplePages pages (all of a small relation), and the
// second is sized from what that one finds.
Sample sized_sample(pqxx::transaction_base& tx, const TableShape& shape, const KeyRange& range,
                    const ChunkPlanSettings& s) {
  const RelationSize size = relation_size(tx, shape);
  const std::size_t expected = size.rows ? chunk_count(*size.rows, s) : 1;
  const Sample sample = take_sample(tx, shape, range, Read{sample_percent(size.pages, expected), 0}, s);
  const double wanted = sample_percent(size.pages, sample.chunks);
  return wanted > 2 * sample.read.percent ? take_sample(tx, shape, range, Read{wanted, 0}, s) : sample;
}

// Whether a sample may be wrong about min_chunks: it holds too few rows to
// place min_chunks - 1 bounds, or the sizes alone make fewer chunks than
// min_chunks and its estimate is near min_chunks_rows() (within twice), where
// the rule starts.
bool unsure_of_min_chunks(const Sample& sample, const ChunkPlanSettings& s) {
  if (sample.read.percent >= 100 || s.min_chunks < 2) return false;
  const bool by_size = chunks_by_size(sample.estimate, s) >= s.min_chunks;
  return sample.rows < s.min_chunks || (!by_size && sample.estimate < 2 * min_chunks_rows(s));
}

// The sample to cut by: sized_sample(), unless it is unsure of min_chunks.
// Then the range's first rows in key order, up to kExactReadFactor times
// min_chunks_rows() (a read the settings bound), are read instead: fewer are
// all of the range, counted and cut exactly. That many mean the sample was
// far off: it stands if it finds the rows for min_chunks, else those first
// rows are cut (the rest going to the last chunk).
constexpr double kExactReadFactor = 4;

Sample choose_sample(pqxx::transaction_base& tx, const TableShape& shape, const KeyRange& range,
                     const ChunkPlanSettings& s) {
  const Sample sample = sized_sample(tx, shape, range, s);
  if (!unsure_of_min_chunks(sample, s)) return sample;
  const auto limit = static_cast<std::size_t>(kExactReadFactor * min_chunks_rows(s));
  const Sample first = take_sample(tx, shape, range, Read{100, limit}, s);
  const bool sample_suffices = sample.chunks >= s.min_chunks && sample.rows >= s.min_chunks;
  return first.rows < limit || !sample_suffices ? first : sample;
}

}  // namespace

std::vector<KeyValues> plan_chunk_bounds(pqxx::connection& conn, const TableShape& shape, const KeyRange& range,
                                         const ChunkPlanSettings& settings) {
  if (shape.key_columns.empty()) return {};
  pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(conn);
  const Sample sample = choose_sample(tx, shape, range, settings);
  std::vector<KeyValues> bounds;
  if (sample.chunks > 1) bounds = keys_at(tx, shape, range, sample.read, bound_ranks(sample.rows, sample.chunks));
  tx.commit();
  return bounds;
}

}  // namespace rekey::db
