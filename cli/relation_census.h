// The census of one relation against PostgreSQL: a PgRowScanner (one
// snapshot; a server-side token-prefix filter when every column's policy is
// kValuesWithToken) feeding census_table.
#pragma once

#include <string>

#include "cli/run_report.h"
#include "cli/target_resolver.h"
#include "db/sql_text.h"
#include "migrate/census_engine.h"

namespace rekey {

// crypto's token signs as a filter on the server.
db::TokenFilter token_filter();

// Reads `shape` (ONLY; an empty key_columns keys rows by ctid), from the
// exported `snapshot` when not empty, and counts it per `settings`. Database
// errors propagate.
CensusOutcome census_relation(const std::string& conninfo, const std::string& snapshot, const TableShape& shape,
                              const crypto::Keyring& keyring, const CensusSettings& settings, StopControl& stop,
                              const std::function<void(std::int64_t rows_seen, double elapsed_seconds)>& on_progress);

// Counts, read-only, the columns rotate found holding tokens but cannot
// rewrite: what they still hold under an old key makes the run exit 3.
std::vector<UncoveredColumn> census_uncovered(const std::string& conninfo, const RotationTargets& targets,
                                              const crypto::Keyring& keyring, const CensusSettings& settings,
                                              StopControl& stop);

}  // namespace rekey
