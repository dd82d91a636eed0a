#include "migrate/table_port.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/hex.h"
#include "common/identifier.h"
#include "common/log.h"

namespace rekey {

std::string TableShape::display_name() const { return rekey::display_name(schema, table); }

TableShape TableShape::column_shape(std::size_t column) const {
  TableShape one = *this;
  one.columns = {columns.at(column)};
  one.kinds = {kinds.at(column)};
  one.policies = {policy(column)};
  return one;
}

std::string TableShape::column_display(std::size_t column) const {
  return rekey::display_name(schema, table, columns.at(column));
}

std::string key_display(const KeyValues& key) {
  if (key.size() == 1) return key.front();
  return key_to_json(key).dump();
}

nlohmann::json key_to_json(const KeyValues& key) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& part : key) {
    if (log::is_utf8(part)) {
      out.push_back(part);
    } else {
      out.push_back({{"hex", to_hex(part)}});
    }
  }
  return out;
}

KeyValues key_from_json(const nlohmann::json& j) {
  KeyValues key;
  for (const auto& part : j) {
    if (part.is_string()) {
      key.push_back(part.get<std::string>());
      continue;
    }
    const std::string hex = part.at("hex").get<std::string>();
    if (hex.size() % 2 != 0) throw std::invalid_argument("a key part in hex has an odd length");
    std::string bytes;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    key.push_back(std::move(bytes));
  }
  return key;
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

std::vector<ColumnCounts> counts_applied(const BatchWrite& batch, const std::vector<std::size_t>& lost) {
  std::vector<ColumnCounts> counts = batch.counts;
  for (std::size_t i : lost) {
    const RowUpdate& update = batch.updates.at(i);
    for (std::size_t c = 0; c < counts.size() && c < update.cells.size(); ++c) {
      if (!update.cells[c]) continue;
      --counts[c].rotated;
      if (!batch.reread) ++counts[c].changed_concurrently;
    }
  }
  return counts;
}

ReadLimit batch_share(std::size_t rows, std::size_t batch_bytes, std::size_t threads) {
  return ReadLimit{rows, std::max<std::size_t>(1, batch_bytes / (std::max<std::size_t>(1, threads) + 2))};
}

}  // namespace rekey
