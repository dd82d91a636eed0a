#include "cli/targets.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"

namespace rekey {

TableTarget& target_for(std::vector<TableTarget>& targets, const std::string& schema, const std::string& table) {
  const auto it = std::find_if(targets.begin(), targets.end(),
                               [&](const TableTarget& t) { return t.schema == schema && t.table == table; });
  if (it != targets.end()) return *it;
  targets.push_back({schema, table, {}});
  return targets.back();
}

std::vector<TableTarget> group_targets(const std::vector<std::string>& specs) {
  std::vector<TableTarget> out;
  for (const auto& spec : specs) {
    ColumnRef ref;
    try {
      ref = parse_column_ref(spec);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--column: ") + e.what());
    }
    target_for(out, ref.schema, ref.table)
        .columns.push_back(ref.column);  // a column named twice is the catalog's to refuse
  }
  return out;
}

std::string targets_key(const std::vector<TableShape>& shapes) {
  std::vector<TableTarget> targets;
  for (const auto& s : shapes) targets.push_back({s.schema, s.table, s.columns});
  return targets_key(targets);
}

std::string targets_key(const std::vector<TableTarget>& targets) {
  std::vector<std::string> lines;
  for (const auto& t : targets) {
    for (const auto& c : t.columns) {
      lines.push_back(target_line(t.schema, t.table, c));
    }
  }
  std::sort(lines.begin(), lines.end());
  lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
  std::string key;
  for (const auto& l : lines) key += l + "\n";
  return key;
}

std::string target_line(const std::string& schema, const std::string& table, const std::string& column) {
  // Escaped: a newline in a name must not split its line in two.
  return log::printable(display_name(schema, table, column));
}

std::set<std::string> target_lines(const std::string& targets) {
  std::set<std::string> out;
  std::istringstream in(targets);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.insert(line);
  }
  return out;
}

bool targets_overlap(const std::string& a, const std::string& b) {
  const std::set<std::string> mine = target_lines(a);
  for (const auto& line : target_lines(b)) {
    if (mine.count(line) > 0) return true;
  }
  return false;
}

}  // namespace rekey
