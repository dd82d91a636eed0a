#include "cli/target_resolver.h"

#include <algorithm>

#include "cli/discovery.h"
#include "cli/targets.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"
#include "db/catalog.h"
#include "db/connection.h"

namespace rekey {
namespace {

void add_column(std::vector<TableTarget>& targets, const std::string& schema, const std::string& table,
                const std::string& column) {
  auto& columns = target_for(targets, schema, table).columns;
  if (std::find(columns.begin(), columns.end(), column) == columns.end()) columns.push_back(column);
}

void add_uncovered(std::vector<db::ScopeRelation>& uncovered, const DiscoveredColumn& found,
                   const db::ScopeRelation& relation) {
  auto it = std::find_if(uncovered.begin(), uncovered.end(), [&](const db::ScopeRelation& r) {
    return r.schema == found.schema && r.table == found.table;
  });
  if (it == uncovered.end()) {
    uncovered.push_back(relation);
    uncovered.back().columns.clear();
    it = uncovered.end() - 1;
  }
  for (const auto& c : relation.columns) {
    if (c.name == found.column) it->columns.push_back(c);
  }
}

// Adds what discovery finds: rotatable columns as targets, the others as
// uncovered. Row-level security hiding rows is a refusal (UsageError).
void add_discovered(RotationTargets& out, std::vector<TableTarget>& targets, const std::string& conninfo,
                    const std::string& state_schema, const std::vector<std::string>& exclude) {
  DiscoveryOptions options;
  options.state_schema = state_schema;
  options.exclude = exclude;
  options.sample = 0;
  const Discovery found = discover_columns(conninfo, options, nullptr);
  db::DiscoveryQueries queries(conninfo);
  for (const auto& u : found.unchecked) {
    if (u.cause == UncheckedCause::kRowSecurity) throw UsageError("--discover: " + u.object + ": " + u.reason);
    log::warn("{} cannot be checked: {}", u.object, u.reason);
  }
  for (const auto& c : found.columns) {
    if (c.rotatable) {
      add_column(targets, c.schema, c.table, c.column);
      continue;
    }
    log::warn("{} holds {} value(s) with tokens but rotate cannot rewrite it ({}); it is checked at the end",
              display_name(c.schema, c.table, c.column), c.values_with_tokens, c.note);
    for (const auto& rel : queries.list_hierarchies({{c.schema, c.table}})) {
      if (rel.schema == c.schema && rel.table == c.table) add_uncovered(out.uncovered, c, rel);
    }
  }
  out.unchecked = found.unchecked;
  out.excluded = found.excluded;
}

// Adds `from`'s columns to `into` (the same relation); a column named by the
// operator keeps the stricter policy.
void merge_columns(TableShape& into, const TableShape& from) {
  for (std::size_t c = 0; c < from.columns.size(); ++c) {
    const auto at = std::find(into.columns.begin(), into.columns.end(), from.columns[c]);
    if (at == into.columns.end()) {
      into.columns.push_back(from.columns[c]);
      into.kinds.push_back(from.kinds[c]);
      into.policies.push_back(from.policy(c));
    } else if (from.policy(c) == ValuePolicy::kEveryValue) {
      into.policies.resize(into.columns.size(), ValuePolicy::kEveryValue);
      into.policies[static_cast<std::size_t>(at - into.columns.begin())] = ValuePolicy::kEveryValue;
    }
  }
}

// Resolves `targets` against the catalog, each relation's columns with
// `policy`, into `out` (merged with what is there).
void add_shapes(std::vector<TableShape>& out, db::Catalog& catalog, const std::vector<TableTarget>& targets,
                ValuePolicy policy) {
  for (const auto& t : targets) {
    std::vector<TableShape> shapes;
    try {
      shapes = catalog.resolve_table(t.schema, t.table, t.columns);
    } catch (const db::CatalogError& e) {
      throw UsageError(e.what());
    }
    for (auto& shape : shapes) {
      shape.policies.assign(shape.columns.size(), policy);
      const auto same = std::find_if(out.begin(), out.end(), [&](const TableShape& s) {
        return s.schema == shape.schema && s.table == shape.table;
      });
      if (same != out.end()) {
        merge_columns(*same, shape);
        continue;
      }
      log::debug("target {} ({} column(s), about {} rows)", shape.display_name(), shape.columns.size(),
                 static_cast<std::int64_t>(shape.estimated_rows));
      out.push_back(std::move(shape));
    }
  }
}

}  // namespace

RotationTargets resolve_targets(const std::string& conninfo, const std::vector<std::string>& columns, bool discover,
                                const std::string& state_schema, const std::vector<std::string>& exclude) {
  RotationTargets out;
  const std::vector<TableTarget> named = group_targets(columns);
  std::vector<TableTarget> discovered;
  if (discover) {
    add_discovered(out, discovered, conninfo, state_schema, exclude);
    if (named.empty() && discovered.empty() && out.uncovered.empty()) {
      throw UsageError("--discover found no column holding Fernet tokens");
    }
  }
  db::Catalog catalog(conninfo);
  add_shapes(out.shapes, catalog, named, ValuePolicy::kEveryValue);
  add_shapes(out.shapes, catalog, discovered, ValuePolicy::kValuesWithToken);
  return out;
}

}  // namespace rekey
