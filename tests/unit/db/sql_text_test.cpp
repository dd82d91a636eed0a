// The SQL text rekey builds for a target table (db/sql_text.h). Pure: no
// database; what the text does is proven by the db.* integration suites.
#include "db/sql_text.h"

#include <doctest/doctest.h>

#include <string>

namespace rekey {
namespace {

const KeyOperators kCatalogOperators{"OPERATOR(pg_catalog.<)", "OPERATOR(pg_catalog.<=)", "OPERATOR(pg_catalog.=)",
                                     "OPERATOR(pg_catalog.>=)", "OPERATOR(pg_catalog.>)"};
const KeyOperators kCitextOperators{"OPERATOR(public.<)", "OPERATOR(public.<=)", "OPERATOR(public.=)",
                                    "OPERATOR(public.>=)", "OPERATOR(public.>)"};

TableShape one_key_one_column() {
  TableShape s;
  s.schema = "public";
  s.table = "users";
  s.key_columns = {"id"};
  s.key_types = {"bigint"};
  s.key_operators = {kCatalogOperators};
  s.columns = {"phone_enc"};
  s.kinds = {ColumnKind::kText};
  return s;
}

// A composite key (one column of an extension's type), names that need
// quoting, a text and a bytea column.
TableShape two_keys_two_columns() {
  TableShape s;
  s.schema = "Vault Data";
  s.table = "Accounts";
  s.key_columns = {"tenant", "Account \"Id\""};
  s.key_types = {"integer", "public.citext"};
  s.key_operators = {kCatalogOperators, kCitextOperators};
  s.columns = {"iban_enc", "Doc"};
  s.kinds = {ColumnKind::kText, ColumnKind::kBytea};
  return s;
}

std::size_t occurrences(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

}  // namespace

TEST_SUITE("db.sql_text") {
  TEST_CASE("build_update: compare-and-swap per cell, rows returned by their position in the batch") {
    CHECK(db::build_update(one_key_one_column(), db::RowLocks::kWait) ==
          "UPDATE ONLY \"public\".\"users\" AS t SET \"phone_enc\" = CASE WHEN v.n0 IS NULL THEN t.\"phone_enc\" ELSE "
          "v.n0 "
          "END FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS v(k0, o0, n0, ord) "
          "WHERE t.\"id\" OPERATOR(pg_catalog.=) v.k0::bigint AND (v.n0 IS NULL OR t.\"phone_enc\" = v.o0) RETURNING "
          "v.ord");
  }

  TEST_CASE("build_update with kSkipLocked: the same, only for the rows it could lock, row by row") {
    CHECK(db::build_update(one_key_one_column(), db::RowLocks::kSkipLocked) ==
          "UPDATE ONLY \"public\".\"users\" AS t SET \"phone_enc\" = CASE WHEN v.n0 IS NULL THEN t.\"phone_enc\" ELSE "
          "v.n0 "
          "END FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS v(k0, o0, n0, ord) "
          "WHERE t.\"id\" OPERATOR(pg_catalog.=) v.k0::bigint AND (v.n0 IS NULL OR t.\"phone_enc\" = v.o0) "
          "AND EXISTS (SELECT 1 FROM ONLY \"public\".\"users\" AS l WHERE l.\"id\" OPERATOR(pg_catalog.=) v.k0::bigint "
          "FOR UPDATE OF l SKIP LOCKED) RETURNING v.ord");
  }

  TEST_CASE("build_update: a composite key, quoted names, a bytea column") {
    for (const auto locks : {db::RowLocks::kWait, db::RowLocks::kSkipLocked}) {
      const std::string sql = db::build_update(two_keys_two_columns(), locks);
      INFO(sql);
      CHECK(sql.rfind("UPDATE ONLY \"Vault Data\".\"Accounts\" AS t SET ", 0) == 0);
      CHECK(occurrences(sql, "$6::text[]") == 1);
      CHECK(occurrences(sql, "$7") == 0);
      CHECK(occurrences(sql, " WITH ORDINALITY AS v(k0, k1, o0, n0, o1, n1, ord) ") == 1);
      CHECK(occurrences(sql,
                        "t.\"tenant\" OPERATOR(pg_catalog.=) v.k0::integer AND t.\"Account \"\"Id\"\"\" "
                        "OPERATOR(public.=) v.k1::public.citext") == 1);
      CHECK(occurrences(sql, "(v.n1 IS NULL OR t.\"Doc\" = decode(v.o1, 'hex'))") == 1);
      CHECK(occurrences(sql, "ELSE decode(v.n1, 'hex') END") == 1);
      CHECK(occurrences(sql, "RETURNING") == 1);
      CHECK(sql.substr(sql.rfind(" RETURNING ")) == " RETURNING v.ord");
      if (locks == db::RowLocks::kSkipLocked) {
        CHECK(occurrences(sql,
                          " AND EXISTS (SELECT 1 FROM ONLY \"Vault Data\".\"Accounts\" AS l WHERE l.\"tenant\" "
                          "OPERATOR(pg_catalog.=) v.k0::integer AND l.\"Account \"\"Id\"\"\" OPERATOR(public.=) "
                          "v.k1::public.citext FOR UPDATE OF l SKIP LOCKED) RETURNING") == 1);
      } else {
        CHECK(occurrences(sql, "SKIP LOCKED") == 0);
      }
    }
  }

  TEST_CASE("update_arrays: the parameters of build_update, keys then old and new value per column, bytea as hex") {
    using Cells = std::vector<std::optional<std::string>>;
    RowUpdate only_doc{{"7", "A\"b"}, {std::nullopt, RowUpdate::Cell{std::string("\x01\xff", 2), "\x02"}}};
    RowUpdate both{{"8", "c"}, {RowUpdate::Cell{"old", "new"}, RowUpdate::Cell{"", "z"}}};
    const std::vector<std::string> arrays = db::update_arrays(two_keys_two_columns(), {only_doc, both});
    CHECK(arrays == std::vector<std::string>{
                        db::binary_text_array(std::vector<std::string>{"7", "8"}),
                        db::binary_text_array(std::vector<std::string>{"A\"b", "c"}),
                        db::binary_text_array(Cells{std::nullopt, std::string("old")}),
                        db::binary_text_array(Cells{std::nullopt, std::string("new")}),
                        db::binary_text_array(Cells{std::string("01ff"), std::string("")}),
                        db::binary_text_array(Cells{std::string("02"), std::string("7a")}),
                    });
  }

  TEST_CASE("select_rows reads the relation itself (ONLY), its key and text columns as text") {
    CHECK(db::select_rows(two_keys_two_columns(), "t") ==
          "SELECT t.\"tenant\"::text, t.\"Account \"\"Id\"\"\"::text, t.\"iban_enc\"::text, t.\"Doc\" "
          "FROM ONLY \"Vault Data\".\"Accounts\" AS t");
    TableShape keyless = two_keys_two_columns();
    keyless.key_columns.clear();
    CHECK(db::select_rows(keyless, "s") ==
          "SELECT s.ctid::text, s.\"iban_enc\"::text, s.\"Doc\" FROM ONLY \"Vault Data\".\"Accounts\" AS s");
  }

  TEST_CASE("key_after: one row comparison when every key column has the same operator") {
    CHECK(db::key_after(one_key_one_column(), "t", 1) == "(t.\"id\") OPERATOR(pg_catalog.>) ($1::bigint)");
    TableShape s = two_keys_two_columns();
    s.key_types = {"public.citext", "public.citext"};
    s.key_operators = {kCitextOperators, kCitextOperators};
    CHECK(db::key_after(s, "t", 3) ==
          "(t.\"tenant\", t.\"Account \"\"Id\"\"\") OPERATOR(public.>) ($3::public.citext, $4::public.citext)");
  }

  TEST_CASE("key_after: column by column when the operators differ, led by the first column's >=") {
    CHECK(db::key_after(two_keys_two_columns(), "t", 1) ==
          "t.\"tenant\" OPERATOR(pg_catalog.>=) $1::integer AND (t.\"tenant\" OPERATOR(pg_catalog.>) $1::integer OR "
          "(t.\"tenant\" OPERATOR(pg_catalog.=) $1::integer AND (t.\"Account \"\"Id\"\"\" OPERATOR(public.>) "
          "$2::public.citext)))");
  }

  TEST_CASE(
      "join_keys: one qualified unnest per key column, in ROWS FROM (the several-array form is unqualified only)") {
    CHECK(db::join_keys(two_keys_two_columns(), "t", 3) ==
          " JOIN ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) WITH ORDINALITY AS "
          "v(k0, k1, ord) ON t.\"tenant\" OPERATOR(pg_catalog.=) v.k0::integer AND t.\"Account \"\"Id\"\"\" "
          "OPERATOR(public.=) v.k1::public.citext");
  }

  TEST_CASE("key_up_to: the rows up to and including a key, in the same two forms") {
    CHECK(db::key_up_to(one_key_one_column(), "t", 2) == "(t.\"id\") OPERATOR(pg_catalog.<=) ($2::bigint)");
    CHECK(db::key_up_to(two_keys_two_columns(), "t", 1) ==
          "t.\"tenant\" OPERATOR(pg_catalog.<=) $1::integer AND (t.\"tenant\" OPERATOR(pg_catalog.<) $1::integer OR "
          "(t.\"tenant\" OPERATOR(pg_catalog.=) $1::integer AND (t.\"Account \"\"Id\"\"\" OPERATOR(public.<=) "
          "$2::public.citext)))");
  }
}

}  // namespace rekey
