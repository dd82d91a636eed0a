// db::plan_chunk_bounds (db/chunk_plan.h) against the real PostgreSQL
// (REKEY_TEST_DB): random tables (an int key; a composite (int, text) key; a
// text key under an ICU collation; a composite key with citext), random
// sizes, physical orders, statistics, settings and ranges. Each plan is judged
// twice: with SQL over the key operators the writer lanes use (every row of
// the range in exactly one chunk, no chunk empty), and against the table's
// keys read in its primary key's order (the bounds are existing keys of the
// range, strictly increasing; the chunk sizes agree with the SQL counts).
// REKEY_CHUNK_SEED=N replays the random choices of a failure.
#include "db/chunk_plan.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <vector>

#include "common/identifier.h"
#include "db/catalog.h"
#include "db/connection.h"
#include "db/sql_text.h"
#include "tests/support/it_support.h"

namespace {

using namespace rekey::it;
using rekey::KeyRange;
using rekey::KeyValues;
using rekey::TableShape;
using rekey::db::ChunkPlanSettings;
using Clock = std::chrono::steady_clock;

// REKEY_CHUNK_SEED, or a fresh random seed.
std::uint32_t test_seed() {
  const char* fixed = std::getenv("REKEY_CHUNK_SEED");
  if (fixed != nullptr && *fixed != '\0') return static_cast<std::uint32_t>(std::stoul(fixed));
  return std::random_device{}();
}

std::size_t uniform(std::mt19937& rng, std::size_t lo, std::size_t hi) {
  return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
}

template <typename T>
T one_of(std::mt19937& rng, const std::vector<T>& choices) {
  return choices.at(uniform(rng, 0, choices.size() - 1));
}

// ---------------------------------------------------------------- tables

// A kind of primary key: its columns, the key, and the key of row g (1..n).
struct KeyKind {
  std::string label;
  std::string columns;
  std::string key;
  std::string values;
};

// The kinds this server supports: an ICU collation and citext when it has them.
std::vector<KeyKind> key_kinds(TestDatabase& db) {
  std::vector<KeyKind> kinds{{"int", "id int", "id", "g"},
                             {"int_text", "grp int, name text", "grp, name", "g / 7, md5(g::text)"}};
  const bool icu = db.count("SELECT count(*) FROM pg_collation WHERE collname = 'en-US-x-icu'") > 0;
  if (!icu) MESSAGE("no en-US-x-icu collation on this server: the text key is tested under \"C\" instead");
  // Upper and lower case and accents: the ICU order is not the bytes' order.
  kinds.push_back({"text", std::string("k text COLLATE \"") + (icu ? "en-US-x-icu" : "C") + "\"", "k",
                   "CASE g % 3 WHEN 0 THEN upper(md5(g::text)) WHEN 1 THEN md5(g::text) ELSE 'é' || md5(g::text) END"});
  if (db.count("SELECT count(*) FROM pg_available_extensions WHERE name = 'citext'") > 0) {
    db.exec("CREATE EXTENSION citext");
    // Two columns whose "<" live in different schemas: key_after's column-by-column form.
    kinds.push_back({"int_citext", "grp int, name public.citext", "grp, name",
                     "g % 5, CASE g % 2 WHEN 0 THEN upper(md5(g::text)) ELSE md5(g::text) END"});
  } else {
    MESSAGE("no citext extension on this server: no citext key tested");
  }
  return kinds;
}

struct Table {
  std::string name;
  TableShape shape;
  bool ranked = false;                    // keys and rank read (not for a large table)
  std::vector<KeyValues> keys;            // every key, in the primary key's order
  std::map<KeyValues, std::size_t> rank;  // of each key: 1-based, in that order
};

// How a table is laid out: rows in key order or shuffled, a pad that spreads
// them over more pages, statistics or none (reltuples -1).
struct Layout {
  bool shuffled = false;
  int pad = 0;
  bool analyzed = true;
};

// Every key of `t` as text, in its primary key's order (each column's own
// default order, which is its index's: ORDER BY names the table's columns,
// not the text the SELECT list makes of them).
void read_keys(pqxx::connection& conn, Table& t) {
  pqxx::nontransaction tx(conn);
  std::string text_keys;
  for (const auto& k : t.shape.key_columns) {
    text_keys += (text_keys.empty() ? "t." : ", t.") + rekey::quote_ident(k) + "::text";
  }
  for (const auto& r : tx.exec("SELECT " + text_keys + " FROM " + rekey::db::only_relation(t.shape) +
                               " AS t ORDER BY " + rekey::db::key_list(t.shape, "t."))) {
    KeyValues key;
    for (const auto& f : r) key.push_back(f.as<std::string>());
    t.rank.emplace(key, t.keys.size() + 1);
    t.keys.push_back(std::move(key));
  }
}

Table make_table(TestDatabase& db, pqxx::connection& conn, const KeyKind& kind, std::size_t rows, const Layout& layout,
                 bool ranked = true) {
  static int counter = 0;
  Table t;
  t.name = kind.label + "_" + std::to_string(rows) + "_" + std::to_string(++counter);
  db.exec("CREATE TABLE " + t.name + " (" + kind.columns + ", v text, pad text, PRIMARY KEY (" + kind.key + "))" +
          (layout.analyzed ? "" : " WITH (autovacuum_enabled = false)"));
  db.exec("INSERT INTO " + t.name + " SELECT " + kind.values + ", NULL, repeat('x', " + std::to_string(layout.pad) +
          ") FROM generate_series(1, " + std::to_string(rows) + ") AS g" +
          (layout.shuffled ? " ORDER BY random()" : ""));
  if (layout.analyzed) db.exec("ANALYZE " + t.name);
  t.shape = rekey::db::resolve_table(conn, "public", t.name, {"v"}).at(0);
  t.ranked = ranked;
  if (ranked) read_keys(conn, t);
  return t;
}

// ---------------------------------------------------------------- ranges and chunks

// The rows of "t" after `lower` (if any) and up to `upper` (if any), with the
// writer's key operators, its parameters appended to `params`.
std::string between(const TableShape& shape, const std::optional<KeyValues>& lower,
                    const std::optional<KeyValues>& upper, std::vector<std::string>& params) {
  std::string sql = "true";
  if (lower) {
    sql += " AND (" + rekey::db::key_after(shape, "t", params.size() + 1) + ")";
    params.insert(params.end(), lower->begin(), lower->end());
  }
  if (upper) {
    sql += " AND (" + rekey::db::key_up_to(shape, "t", params.size() + 1) + ")";
    params.insert(params.end(), upper->begin(), upper->end());
  }
  return sql;
}

std::size_t count_where(pqxx::connection& conn, const Table& t, const std::string& where,
                        const std::vector<std::string>& params) {
  pqxx::nontransaction tx(conn);
  const std::string sql =
      "SELECT pg_catalog.count(*) FROM " + rekey::db::only_relation(t.shape) + " AS t WHERE " + where;
  return tx.exec_params1(sql, pqxx::prepare::make_dynamic_params(params))[0].as<std::size_t>();
}

// The row of "t" whose key is `key`, with each column's own equality.
std::string key_is(const TableShape& shape, const KeyValues& key, std::vector<std::string>& params) {
  std::string sql;
  for (std::size_t i = 0; i < key.size(); ++i) {
    sql += (i > 0 ? " AND t." : "t.") + rekey::quote_ident(shape.key_columns[i]) + " " + shape.key_operators[i].equal +
           " $" + std::to_string(params.size() + 1) + "::" + shape.key_types[i];
    params.push_back(key[i]);
  }
  return sql;
}

// Chunk i of `bounds` within `range`: its lower and upper key.
std::optional<KeyValues> chunk_lower(const KeyRange& range, const std::vector<KeyValues>& bounds, std::size_t i) {
  return i == 0 ? range.after : std::optional<KeyValues>(bounds[i - 1]);
}
std::optional<KeyValues> chunk_upper(const KeyRange& range, const std::vector<KeyValues>& bounds, std::size_t i) {
  return i == bounds.size() ? range.up_to : std::optional<KeyValues>(bounds[i]);
}

// A random range of `t`: the whole table, after a key, up to one, between two,
// or an empty one (reversed, or after and up to the same key).
KeyRange random_range(const Table& t, std::mt19937& rng) {
  if (t.keys.empty()) return {};
  KeyValues a = one_of(rng, t.keys);
  KeyValues b = one_of(rng, t.keys);
  if (t.rank.at(a) > t.rank.at(b)) std::swap(a, b);
  switch (uniform(rng, 0, 9)) {
    case 0:
    case 1:
    case 2:
      return {};
    case 3:
      return {a, std::nullopt};
    case 4:
      return {std::nullopt, b};
    case 5:
      return {b, a};
    case 6:
      return {a, a};
    default:
      return {a, b};
  }
}

// How many chunks plan_chunk_bounds aims at for `rows` rows (as its contract says).
double chunks_for(std::size_t rows, const ChunkPlanSettings& s) {
  const double by_size = std::max(1.0, std::ceil(static_cast<double>(rows) / static_cast<double>(s.rows_per_chunk)));
  const bool enough = rows >= s.min_chunks * s.min_rows_per_chunk;
  return enough ? std::max(by_size, static_cast<double>(s.min_chunks)) : by_size;
}

// The ranks of `range`'s ends: of range.after (0 without one) and of
// range.up_to (the last rank without one).
std::pair<std::size_t, std::size_t> rank_span(const Table& t, const KeyRange& range) {
  return {range.after ? t.rank.at(*range.after) : 0, range.up_to ? t.rank.at(*range.up_to) : t.keys.size()};
}

// ---------------------------------------------------------------- judging a plan

struct Plan {
  std::vector<KeyValues> bounds;
  std::vector<std::size_t> sizes;  // rows per chunk
  std::size_t total = 0;           // rows of the range
  double seconds = 0;
};

// Every bound an existing key of the range, strictly after the one before it
// in the primary key's order: by the writer's operators, and by the ranks of
// ORDER BY.
void check_bounds(pqxx::connection& conn, const Table& t, const KeyRange& range, const std::vector<KeyValues>& bounds) {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    INFO("bound " << rekey::key_display(bounds[i]));
    REQUIRE(bounds[i].size() == t.shape.key_columns.size());
    std::vector<std::string> params;
    const std::string after_previous = between(t.shape, chunk_lower(range, bounds, i), range.up_to, params);
    CHECK(count_where(conn, t, after_previous + " AND " + key_is(t.shape, bounds[i], params), params) == 1);
  }
  if (!t.ranked) return;
  const auto [low, high] = rank_span(t, range);
  std::size_t previous = low;
  for (const auto& b : bounds) {
    INFO("bound " << rekey::key_display(b));
    const auto found = t.rank.find(b);
    REQUIRE(found != t.rank.end());
    CHECK(found->second > previous);
    CHECK(found->second < high);  // never the range's last key: the last chunk is not empty
    previous = found->second;
  }
}

// Each row of the range in exactly one chunk (one query over all chunks), and
// each chunk's rows, counted with the writer's operators.
void check_chunks(pqxx::connection& conn, const Table& t, const KeyRange& range, Plan& plan) {
  std::vector<std::string> params;
  const std::string in_range = between(t.shape, range.after, range.up_to, params);
  plan.total = count_where(conn, t, in_range, params);
  std::string chunks_holding = "0";
  for (std::size_t i = 0; i <= plan.bounds.size(); ++i) {
    std::vector<std::string> chunk_params;
    const auto lower = chunk_lower(range, plan.bounds, i);
    const auto upper = chunk_upper(range, plan.bounds, i);
    plan.sizes.push_back(count_where(conn, t, between(t.shape, lower, upper, chunk_params), chunk_params));
    chunks_holding += " + CASE WHEN " + between(t.shape, lower, upper, params) + " THEN 1 ELSE 0 END";
  }
  CHECK(count_where(conn, t, in_range + " AND (" + chunks_holding + ") <> 1", params) == 0);
  std::size_t sum = 0;
  for (const std::size_t s : plan.sizes) sum += s;
  CHECK(sum == plan.total);
  for (const std::size_t size : plan.sizes) CHECK((size >= 1 || plan.total == 0));
  if (!t.ranked || plan.total == 0) return;
  // The same sizes from the keys' ranks in ORDER BY's order.
  const auto [low, high] = rank_span(t, range);
  std::size_t previous = low;
  for (std::size_t i = 0; i <= plan.bounds.size(); ++i) {
    const std::size_t end = i < plan.bounds.size() ? t.rank.at(plan.bounds[i]) : high;
    CHECK(plan.sizes[i] == end - previous);
    previous = end;
  }
}

// About as many chunks as the range's rows ask for (loosely: a sample), at
// least min_chunks when the range has the rows for them, none for 0 or 1 row.
void check_chunk_count(const Plan& plan, const ChunkPlanSettings& s) {
  const std::size_t chunks = plan.bounds.size() + 1;
  const double aim = chunks_for(plan.total, s);
  INFO("rows " << plan.total << ", chunks " << chunks << ", aimed at " << aim);
  if (plan.total <= 1) CHECK(plan.bounds.empty());
  if (plan.total >= s.min_chunks * s.min_rows_per_chunk) CHECK(chunks >= s.min_chunks);
  CHECK(static_cast<double>(chunks) <= 1.5 * aim + 1);
  CHECK(static_cast<double>(chunks) >= std::floor(0.5 * aim));
  const std::size_t largest = *std::max_element(plan.sizes.begin(), plan.sizes.end());
  CHECK(static_cast<double>(largest) <= 2.5 * static_cast<double>(plan.total) / static_cast<double>(chunks) + 1);
}

Plan plan_and_check(pqxx::connection& conn, const Table& t, const KeyRange& range, const ChunkPlanSettings& s) {
  INFO("table " << t.name << " (" << t.keys.size() << " rows), rows_per_chunk " << s.rows_per_chunk << ", min_chunks "
                << s.min_chunks << ", min_rows_per_chunk " << s.min_rows_per_chunk << ", after "
                << (range.after ? rekey::key_display(*range.after) : "-") << ", up to "
                << (range.up_to ? rekey::key_display(*range.up_to) : "-"));
  Plan plan;
  const auto started = Clock::now();
  plan.bounds = rekey::db::plan_chunk_bounds(conn, t.shape, range, s);
  plan.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  check_bounds(conn, t, range, plan.bounds);
  check_chunks(conn, t, range, plan);
  check_chunk_count(plan, s);
  return plan;
}

ChunkPlanSettings random_settings(std::size_t rows, std::mt19937& rng) {
  ChunkPlanSettings s;
  // At most about 40 chunks, so that judging each stays quick.
  s.rows_per_chunk = std::max<std::size_t>(1, rows / uniform(rng, 1, 40)) + uniform(rng, 0, 50);
  if (uniform(rng, 0, 4) == 0) s.rows_per_chunk = 100000;
  s.min_chunks = one_of<std::size_t>(rng, {1, 1, 2, 5, 16});
  s.min_rows_per_chunk = one_of<std::size_t>(rng, {1, 10, 1000});
  return s;
}

}  // namespace

TEST_SUITE("integration.chunk_plan") {
  TEST_CASE("random tables, sizes and ranges: increasing keys of the range as bounds, each row in one chunk") {
    REKEY_IT_REQUIRE_DB();
    const std::uint32_t seed = test_seed();
    INFO("REKEY_CHUNK_SEED=" << seed);
    std::mt19937 rng(seed);
    TestDatabase db("chunk_plan");
    const auto conn = rekey::db::connect(db.conninfo());
    for (const KeyKind& kind : key_kinds(db)) {
      for (const std::size_t rows : {0, 1, 500, 20000, 120000}) {
        const Layout layout{uniform(rng, 0, 1) == 1, one_of(rng, std::vector<int>{0, 200}), uniform(rng, 0, 3) > 0};
        const Table t = make_table(db, *conn, kind, rows, layout);
        INFO("shuffled " << layout.shuffled << ", pad " << layout.pad << ", analyzed " << layout.analyzed);
        for (int i = 0; i < 3; ++i) plan_and_check(*conn, t, random_range(t, rng), random_settings(rows, rng));
      }
    }
  }

  TEST_CASE("a table of a few pages is read whole: the exact number of chunks, their sizes within one row") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("chunk_plan_small");
    const auto conn = rekey::db::connect(db.conninfo());
    const Table t = make_table(db, *conn, key_kinds(db).at(1), 5000, Layout{true, 0, false});
    for (const std::size_t per_chunk : {1000, 1250, 2000, 4999, 5000}) {
      const Plan plan = plan_and_check(*conn, t, {}, ChunkPlanSettings{per_chunk, 1, 1000});
      const std::size_t chunks = (5000 + per_chunk - 1) / per_chunk;
      CHECK(plan.bounds.size() + 1 == chunks);
      const auto [smallest, largest] = std::minmax_element(plan.sizes.begin(), plan.sizes.end());
      CHECK(*largest - *smallest <= 1);
    }
    // min_chunks: 5000 rows make 8 chunks of 625 rows at most 1000 a chunk, but not 8 of 1000 at least.
    CHECK(plan_and_check(*conn, t, {}, ChunkPlanSettings{100000, 8, 625}).bounds.size() == 7);
    CHECK(plan_and_check(*conn, t, {}, ChunkPlanSettings{100000, 8, 1000}).bounds.empty());
  }

  TEST_CASE("a narrow range of a sampled table gets its min_chunks, from the range's own first rows") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("chunk_plan_narrow");
    const auto conn = rekey::db::connect(db.conninfo());
    // About 3500 pages: sampled.
    const Table t = make_table(db, *conn, key_kinds(db).at(0), 120000, Layout{false, 200, true});
    for (const std::size_t rows : {7999, 8000, 8001, 30000}) {
      const KeyRange range{t.keys.at(50000), t.keys.at(50000 + rows)};
      const Plan plan = plan_and_check(*conn, t, range, ChunkPlanSettings{100000, 8, 1000});
      CHECK(plan.total == rows);
      CHECK((plan.bounds.size() + 1 >= 8) == (rows >= 8000));
      if (rows <= 8001) {  // near min_chunks * min_rows_per_chunk: counted and cut exactly
        const auto [smallest, largest] = std::minmax_element(plan.sizes.begin(), plan.sizes.end());
        CHECK(*largest - *smallest <= 1);
      }
    }
  }

  TEST_CASE("1M rows with an int key: about ten chunks of about 100000 rows, planned from a sample") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("chunk_plan_1m");
    const auto conn = rekey::db::connect(db.conninfo());
    const Table t = make_table(db, *conn, key_kinds(db).at(0), 1000000, Layout{false, 0, true}, false);
    const Plan plan = plan_and_check(*conn, t, {}, ChunkPlanSettings{});
    MESSAGE("1M rows: " << plan.bounds.size() + 1 << " chunks planned in " << plan.seconds * 1000 << " ms");
    CHECK(plan.bounds.size() >= 9);
    CHECK(plan.bounds.size() <= 10);
    for (const std::size_t size : plan.sizes) CHECK(size <= 150000);
    CHECK(plan.seconds < 2.0);
  }

  TEST_CASE("never chunked: a shape without key columns; an unknown relation throws") {
    REKEY_IT_REQUIRE_DB();
    TestDatabase db("chunk_plan_edges");
    const auto conn = rekey::db::connect(db.conninfo());
    TableShape no_key;
    no_key.schema = "public";
    no_key.table = "nowhere";
    CHECK(rekey::db::plan_chunk_bounds(*conn, no_key, {}, ChunkPlanSettings{1, 4, 1}).empty());
    TableShape unknown = make_table(db, *conn, key_kinds(db).at(0), 10, Layout{}).shape;
    unknown.table = "nowhere";
    CHECK_THROWS_AS(rekey::db::plan_chunk_bounds(*conn, unknown, {}, ChunkPlanSettings{}), pqxx::undefined_table);
  }
}
