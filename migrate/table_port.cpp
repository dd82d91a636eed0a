#include "migrate/table_port.h"

#include <nlohmann/json.hpp>

#include "db/identifier.h"

namespace rekey {

std::string TableShape::display_name() const {
  return db::quote_ident_if_needed(schema) + "." + db::quote_ident_if_needed(table);
}

TableShape TableShape::column_shape(std::size_t column) const {
  TableShape one = *this;
  one.columns = {columns.at(column)};
  one.kinds = {kinds.at(column)};
  one.policies = {policy(column)};
  return one;
}

std::string TableShape::column_display(std::size_t column) const {
  return display_name() + "." + db::quote_ident_if_needed(columns.at(column));
}

std::string key_display(const KeyValues& key) {
  if (key.size() == 1) return key.front();
  return nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void to_json(nlohmann::json& j, const ColumnCounts& c) {
  j = nlohmann::json{{"rotated", c.rotated},
                     {"already_new", c.already_new},
                     {"null", c.null},
                     {"undecryptable", c.undecryptable},
                     {"changed_concurrently", c.changed_concurrently},
                     {"no_token", c.no_token}};
}

void from_json(const nlohmann::json& j, ColumnCounts& c) {
  c.rotated = j.value("rotated", std::int64_t{0});
  c.already_new = j.value("already_new", std::int64_t{0});
  c.null = j.value("null", std::int64_t{0});
  c.undecryptable = j.value("undecryptable", std::int64_t{0});
  c.changed_concurrently = j.value("changed_concurrently", std::int64_t{0});
  c.no_token = j.value("no_token", std::int64_t{0});
}

ColumnCounts& ColumnCounts::operator+=(const ColumnCounts& o) {
  rotated += o.rotated;
  already_new += o.already_new;
  null += o.null;
  undecryptable += o.undecryptable;
  changed_concurrently += o.changed_concurrently;
  no_token += o.no_token;
  return *this;
}

}  // namespace rekey
