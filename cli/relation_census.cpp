#include "cli/relation_census.h"

#include <algorithm>

#include "crypto/token_signs.h"
#include "db/pg_row_scanner.h"

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

}  // namespace rekey
