// Turning --column specs (or --discover) into what a rotation rewrites, and
// what it must check at the end without being able to rewrite it.
#pragma once

#include <string>
#include <vector>

#include "cli/scope.h"
#include "migrate/table_port.h"

namespace rekey {

struct RotationTargets {
  std::vector<TableShape> shapes;  // rewritten, one per relation
  // Columns found holding tokens that rotate cannot rewrite (see
  // why_not_rotatable): counted at the end; a value not under the new key
  // there makes the run exit 3.
  std::vector<db::ScopeRelation> uncovered;
  std::vector<Unchecked> unchecked;   // could not be read: the run exits 3
  std::vector<std::string> excluded;  // left out by --exclude
};

// Resolves each named table (with its inheritance children and partitions)
// and its columns against the catalog; with `discover`, adds every column
// that holds a token anywhere (outside `state_schema` and `exclude`). Throws
// UsageError naming the table or column that is unknown, has no primary key,
// cannot hold a token, or is hidden in part by row-level security, or when
// nothing is found.
RotationTargets resolve_targets(const std::string& conninfo, const std::vector<std::string>& columns, bool discover,
                                const std::string& state_schema, const std::vector<std::string>& exclude);

}  // namespace rekey
