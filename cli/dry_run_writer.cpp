#include "cli/dry_run_writer.h"

#include "cli/run_report.h"

namespace rekey {

std::vector<std::size_t> DryRunWriter::write(const BatchWrite& batch) {
  for (const auto& f : batch.failures) {
    if (failures_.size() >= kMaxListed) break;
    failures_.push_back(failure_json(table_, columns_.at(f.column), key_display(f.key), f.reason));
  }
  return {};
}

}  // namespace rekey
