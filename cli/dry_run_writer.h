// The writer of `rekey rotate --dry-run`: writes nothing, and keeps the
// first failures it is given for the report.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "migrate/table_port.h"

namespace rekey {

// Writes nothing: the dry run's writer. Keeps the first failures for the report.
class DryRunWriter final : public TableWriter {
 public:
  DryRunWriter(std::string table, std::vector<std::string> columns, nlohmann::json& failures)
      : table_(std::move(table)), columns_(std::move(columns)), failures_(failures) {}
  std::vector<std::size_t> write(const BatchWrite& batch) override;
  std::vector<KeyValues> pending() override { return {}; }

 private:
  static constexpr std::size_t kMaxListed = 1000;
  std::string table_;
  std::vector<std::string> columns_;
  nlohmann::json& failures_;
};

}  // namespace rekey
