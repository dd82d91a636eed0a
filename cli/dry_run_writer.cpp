#include "cli/dry_run_writer.h"

#include "common/log.h"

namespace rekey {

std::vector<std::size_t> DryRunWriter::write(const BatchWrite& batch) {
  for (const auto& f : batch.failures) {
    if (failures_.size() >= kMaxListed) break;
    failures_.push_back({{"table", table_},
                         {"column", columns_.at(f.column)},
                         {"primary_key", log::json_text(key_display(f.key))},
                         {"reason", f.reason}});
  }
  return {};
}

}  // namespace rekey
