// Operator-named target columns, grouped by table.
#pragma once

#include <string>
#include <vector>

namespace rekey {

struct TableTarget {
  std::string schema;
  std::string table;
  std::vector<std::string> columns;
};

// Parses [SCHEMA.]TABLE.COLUMN specs (SQL identifier rules) and groups them by
// table, keeping first-seen order. Throws UsageError naming a malformed spec.
std::vector<TableTarget> group_targets(const std::vector<std::string>& specs);

// A canonical description of the targets (sorted schema.table.column lines):
// what identifies "the same rotation" across reruns.
std::string targets_key(const std::vector<TableTarget>& targets);

}  // namespace rekey
