#include "cli/scope.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "cli/targets.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "db/state_store.h"

namespace rekey {
namespace {

constexpr const char* kRowSecurity =
    "row-level security hides rows from this role: run as the table's owner (without FORCE ROW LEVEL SECURITY) "
    "or a role with BYPASSRLS, or --exclude it";
constexpr const char* kForeignTable =
    "foreign table: its rows live on another server; check them there, or --exclude it";
constexpr const char* kUnsearchable =
    "an array of bytea: rekey cannot search it for tokens; check it by other means, then --exclude it";
constexpr const char* kUnreadable =
    "this role may not read it (SELECT on the column, USAGE on the schema): grant that, or --exclude it";

// Whether a relation can be checked at all; why when not.
std::optional<Unchecked> why_unchecked(const db::ScopeRelation& rel) {
  const std::string name = display_name(rel.schema, rel.table);
  if (rel.kind == db::RelationKind::kForeignTable) return Unchecked{name, UncheckedCause::kForeignTable, kForeignTable};
  if (rel.row_security) return Unchecked{name, UncheckedCause::kRowSecurity, kRowSecurity};
  return std::nullopt;
}

// Keeps the readable columns of `rel` for which `keep` is true; records the
// unreadable ones as unchecked. Adds `rel` to the scope when a column is left.
template <typename Keep>
void add_relation(Scope& scope, db::ScopeRelation rel, Keep keep) {
  if (auto why = why_unchecked(rel)) {
    scope.unchecked.push_back(std::move(*why));
    return;
  }
  std::vector<db::ScopeColumn> kept;
  for (auto& column : rel.columns) {
    if (!keep(column)) continue;
    if (!column.readable) {
      scope.unchecked.push_back(
          {display_name(rel.schema, rel.table, column.name), UncheckedCause::kUnreadable, kUnreadable});
      continue;
    }
    if (!column.searchable) {
      scope.unchecked.push_back(
          {display_name(rel.schema, rel.table, column.name), UncheckedCause::kUnsearchable, kUnsearchable});
      continue;
    }
    kept.push_back(std::move(column));
  }
  rel.columns = std::move(kept);
  if (!rel.columns.empty()) scope.relations.push_back(std::move(rel));
}

}  // namespace

void to_json(nlohmann::json& j, const Unchecked& u) { j = {{"object", u.object}, {"reason", u.reason}}; }

Exclusions::Exclusions(const std::vector<std::string>& specs) {
  for (const auto& spec : specs) {
    std::vector<std::string> parts;
    try {
      parts = split_qualified_name(spec);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--exclude: ") + e.what());
    }
    if (parts.size() == 2) {
      entries_.push_back({parts[0], parts[1], std::nullopt});
    } else if (parts.size() == 3) {
      entries_.push_back({parts[0], parts[1], parts[2]});
    } else {
      throw UsageError("--exclude: expected SCHEMA.TABLE or SCHEMA.TABLE.COLUMN, not '" + spec + "'");
    }
  }
}

bool Exclusions::excludes(const std::string& schema, const std::string& table) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return !e.column && e.schema == schema && e.table == table; });
}

bool Exclusions::excludes(const std::string& schema, const std::string& table, const std::string& column) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) {
    return e.schema == schema && e.table == table && (!e.column || *e.column == column);
  });
}

std::vector<std::string> Exclusions::display() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) {
    out.push_back(e.column ? display_name(e.schema, e.table, *e.column) : display_name(e.schema, e.table));
  }
  return out;
}

Scope database_scope(db::DiscoveryQueries& queries, const std::vector<std::string>& schemas,
                     const std::string& state_schema, const Exclusions& exclusions) {
  Scope scope;
  const auto& state_tables = db::StateStore::table_names();
  for (auto& rel : queries.list_scope(schemas)) {
    if (rel.schema == state_schema &&
        std::find(state_tables.begin(), state_tables.end(), rel.table) != state_tables.end()) {
      scope.excluded.push_back(display_name(rel.schema, rel.table) + " (rekey's own state)");
      continue;
    }
    if (exclusions.excludes(rel.schema, rel.table)) {
      scope.excluded.push_back(display_name(rel.schema, rel.table));
      continue;
    }
    const std::string schema = rel.schema;
    const std::string table = rel.table;
    add_relation(scope, std::move(rel), [&](const db::ScopeColumn& c) {
      if (!exclusions.excludes(schema, table, c.name)) return true;
      scope.excluded.push_back(display_name(schema, table, c.name));
      return false;
    });
  }
  return scope;
}

Scope named_scope(db::DiscoveryQueries& queries, const std::vector<std::string>& column_specs) {
  Scope scope;
  for (const TableTarget& target : group_targets(column_specs)) {
    const std::string name = display_name(target.schema, target.table);
    std::vector<db::ScopeRelation> hierarchy = queries.list_hierarchies({{target.schema, target.table}});
    const std::string kind = queries.relation_kind(target.schema, target.table);
    if (kind.empty()) throw UsageError("table " + name + " does not exist (or is not visible to this user)");
    if (kind == "view" || kind == "sequence" || kind == "index" || kind == "relation") {
      throw UsageError(name + " is a " + kind + ", not a table: name the table that stores its values");
    }
    for (const auto& column : target.columns) {
      const bool found = std::any_of(hierarchy.begin(), hierarchy.end(), [&](const db::ScopeRelation& r) {
        return std::any_of(r.columns.begin(), r.columns.end(),
                           [&](const db::ScopeColumn& c) { return c.name == column; });
      });
      if (!found) {
        throw UsageError(
            "table " + name + " has no column " + quote_ident_if_needed(column) +
            " that can hold a Fernet token (text, varchar, char, json, jsonb, an array of them, or bytea)");
      }
    }
    for (auto& rel : hierarchy) {
      add_relation(scope, std::move(rel), [&](const db::ScopeColumn& c) {
        return std::find(target.columns.begin(), target.columns.end(), c.name) != target.columns.end();
      });
    }
  }
  return scope;
}

std::optional<std::string> why_not_rotatable(const db::ScopeRelation& relation, const db::ScopeColumn& column) {
  if (relation.kind == db::RelationKind::kMaterializedView) {
    return std::string("materialized view: REFRESH it once the tables it reads are rotated");
  }
  if (relation.kind == db::RelationKind::kForeignTable) return std::string("foreign table");
  if (relation.row_security) return std::string(kRowSecurity);
  if (column.generated) {
    return std::string("generated column: PostgreSQL recomputes it when the columns it is computed from are rotated");
  }
  if (relation.key_columns.empty()) return std::string("table has no primary key");
  if (column.in_key) return std::string("column is part of the primary key; rekey does not rewrite key columns");
  if (!column.rotatable_type) {
    return "type " + column.type + ": rekey rewrites only text, varchar, char and bytea columns";
  }
  return std::nullopt;
}

}  // namespace rekey
