// Operator-named target columns, grouped by table.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey {

struct TableTarget {
  std::string schema;
  std::string table;
  std::vector<std::string> columns;
};

// The target of `schema`.`table` in `targets`, appended (with no column)
// when missing. The reference is valid until `targets` next grows.
TableTarget& target_for(std::vector<TableTarget>& targets, const std::string& schema, const std::string& table);

// Parses [SCHEMA.]TABLE.COLUMN specs (SQL identifier rules) and groups them by
// table, keeping first-seen order. Throws UsageError naming a malformed spec.
std::vector<TableTarget> group_targets(const std::vector<std::string>& specs);

// A canonical description of the targets (sorted schema.table.column lines):
// what identifies "the same rotation" across reruns.
std::string targets_key(const std::vector<TableTarget>& targets);
// The same for resolved tables (their schema, table and columns).
std::string targets_key(const std::vector<TableShape>& shapes);

// One line of a targets_key: schema.table.column in display form, escaped.
std::string target_line(const std::string& schema, const std::string& table, const std::string& column);

// The schema.table.column lines of a targets_key, and whether two share one.
std::set<std::string> target_lines(const std::string& targets);
bool targets_overlap(const std::string& a, const std::string& b);

}  // namespace rekey
