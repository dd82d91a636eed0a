// The plan of a run's work units: where each table is cut into chunks.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "db/state_store.h"
#include "db/work_units.h"

namespace rekey::db {

struct PlanTarget {
  TableShape shape;
  TableProgress progress;  // its table_progress row: an older checkpoint, done
};

// One TablePlan per target: its rows after its checkpoint cut into chunks of
// about `rows_per_chunk` rows, and into `min_chunks` at least when it has
// enough rows (db::plan_chunk_bounds). Reads only. Throws PortError.
std::vector<TablePlan> plan_units(const std::string& conninfo, const std::vector<PlanTarget>& targets,
                                  std::size_t rows_per_chunk, std::size_t min_chunks);

}  // namespace rekey::db
