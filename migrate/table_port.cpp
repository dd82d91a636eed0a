#include "migrate/table_port.h"

#include <nlohmann/json.hpp>

#include "db/identifier.h"

namespace rekey {

std::string TableShape::display_name() const {
  return db::quote_ident_if_needed(schema) + "." + db::quote_ident_if_needed(table);
}

std::string TableShape::column_display(std::size_t column) const {
  return display_name() + "." + db::quote_ident_if_needed(columns.at(column));
}

std::string key_display(const KeyValues& key) {
  if (key.size() == 1) return key.front();
  return nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ColumnCounts& ColumnCounts::operator+=(const ColumnCounts& o) {
  rotated += o.rotated;
  already_new += o.already_new;
  null += o.null;
  undecryptable += o.undecryptable;
  changed_concurrently += o.changed_concurrently;
  return *this;
}

}  // namespace rekey
