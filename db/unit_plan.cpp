#include "db/unit_plan.h"

#include <pqxx/pqxx>

#include "db/chunk_plan.h"
#include "db/connection.h"

namespace rekey::db {

std::vector<TablePlan> plan_units(const std::string& conninfo, const std::vector<PlanTarget>& targets,
                                  std::size_t rows_per_chunk, std::size_t min_chunks) {
  ChunkPlanSettings settings;
  settings.rows_per_chunk = rows_per_chunk;
  settings.min_chunks = min_chunks;
  return as_port_errors([&] {
    const auto conn = connect(conninfo);
    std::vector<TablePlan> plans;
    for (const auto& t : targets) {
      TablePlan plan{t.shape.display_name(), t.progress.last_key, {}, t.progress.done};
      if (!plan.done) plan.bounds = plan_chunk_bounds(*conn, t.shape, KeyRange{plan.after, std::nullopt}, settings);
      plans.push_back(std::move(plan));
    }
    return plans;
  });
}

}  // namespace rekey::db
