#include "cli/relation_census.h"

#include <algorithm>

#include "cli/scope.h"
#include "crypto/token_signs.h"
#include "db/pg_row_scanner.h"
#include "db/snapshot.h"

namespace rekey {

db::TokenFilter token_filter() {
  const crypto::TokenSigns& signs = crypto::token_signs();
  return db::TokenFilter{signs.anywhere, signs.first_chars, signs.min_whole_length};
}

CensusOutcome census_relation(const std::string& conninfo, const std::string& snapshot, const TableShape& shape,
                              const crypto::Keyring& keyring, const CensusSettings& settings, StopControl& stop,
                              const std::function<void(std::int64_t rows_seen, double elapsed_seconds)>& on_progress) {
  db::ScanSettings scan;
  const bool tokens_only = !shape.columns.empty() &&
                           std::all_of(shape.policies.begin(), shape.policies.end(),
                                       [](ValuePolicy p) { return p == ValuePolicy::kValuesWithToken; }) &&
                           shape.policies.size() == shape.columns.size();
  // Only rows where some value holds a token can count: the server filters.
  if (tokens_only) scan.filter = token_filter();
  scan.first_rows = settings.max_rows;
  scan.snapshot = snapshot;
  db::PgRowScanner scanner(conninfo, shape, scan);
  return census_table(shape, keyring, scanner, settings, stop, on_progress);
}

std::vector<UncoveredColumn> census_uncovered(const std::string& conninfo, const RotationTargets& targets,
                                              const crypto::Keyring& keyring, const CensusSettings& settings,
                                              StopControl& stop) {
  std::vector<UncoveredColumn> out;
  if (targets.uncovered.empty()) return out;
  const db::ExportedSnapshot snapshot(conninfo, std::chrono::milliseconds(0));
  for (const auto& rel : targets.uncovered) {
    const TableShape shape = rel.shape(ValuePolicy::kValuesWithToken);
    const CensusOutcome census = census_relation(conninfo, snapshot.id(), shape, keyring, settings, stop, nullptr);
    for (std::size_t c = 0; c < rel.columns.size(); ++c) {
      const CensusCounts& k = census.counts[c];
      out.push_back({shape.column_display(c), why_not_rotatable(rel, rel.columns[c]).value_or(""), k.total,
                     census.completed ? k.not_new() : k.total});
    }
  }
  return out;
}

}  // namespace rekey
