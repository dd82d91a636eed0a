#include "migrate/target_resolver.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "db/catalog.h"
#include "db/connection.h"
#include "db/identifier.h"
#include "migrate/discovery.h"
#include "migrate/errors.h"
#include "migrate/log.h"
#include "migrate/targets.h"

namespace rekey {

std::vector<TableShape> resolve_targets(const std::string& conninfo, const std::vector<std::string>& columns,
                                        bool discover, const std::string& state_schema) {
  std::vector<TableTarget> targets = group_targets(columns);
  if (discover) {
    DiscoveryOptions options;
    options.excluded_schemas.push_back(state_schema);
    for (const auto& found : discover_columns(conninfo, options, nullptr)) {
      if (!found.rotatable) {
        log::warn("{}.{}.{} holds tokens but cannot be rotated ({}); rotate it separately after fixing that",
                  db::quote_ident_if_needed(found.schema), db::quote_ident_if_needed(found.table),
                  db::quote_ident_if_needed(found.column), found.note);
        continue;
      }
      auto it = std::find_if(targets.begin(), targets.end(),
                             [&](const TableTarget& t) { return t.schema == found.schema && t.table == found.table; });
      if (it == targets.end()) {
        targets.push_back({found.schema, found.table, {}});
        it = targets.end() - 1;
      }
      if (std::find(it->columns.begin(), it->columns.end(), found.column) == it->columns.end()) {
        it->columns.push_back(found.column);
      }
    }
    if (targets.empty()) throw UsageError("--discover found no column holding Fernet tokens");
  }
  auto conn = db::connect(conninfo);
  std::vector<TableShape> shapes;
  for (const auto& t : targets) {
    std::vector<TableShape> relations;
    try {
      relations = db::resolve_table(*conn, t.schema, t.table, t.columns);
    } catch (const db::CatalogError& e) {
      throw UsageError(e.what());
    }
    for (const auto& r : relations) {
      log::debug("target {} ({} column(s), about {} rows)", r.display_name(), r.columns.size(),
                 static_cast<std::int64_t>(r.estimated_rows));
    }
    db::merge_shapes(shapes, std::move(relations));
  }
  return shapes;
}

}  // namespace rekey
