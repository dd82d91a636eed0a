// Counting which key each value of a table's columns is under, without
// changing anything: a TBB pipeline of a serial scan (one snapshot, see
// RowScanner), a parallel classification stage (crypto::Keyring::inspect) and
// a serial tally. Memory is bounded by the batches in flight, in rows and bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "crypto/keyring.h"
#include "migrate/stop_control.h"
#include "migrate/table_port.h"

namespace rekey {

struct CensusCounts {
  std::int64_t total = 0;  // values counted: rows read, less values skipped by ValuePolicy::kValuesWithToken
  std::int64_t null = 0;
  std::int64_t under_new = 0;
  std::vector<std::int64_t> under_old;  // one per old key, in keyring order
  std::int64_t undecryptable = 0;       // a token (or too short to be one) no key decrypts
  std::int64_t not_token = 0;           // not a Fernet token in either format

  // Non-NULL values not under the new key.
  std::int64_t not_new() const;
  CensusCounts& operator+=(const CensusCounts& o);
};

struct CensusSettings {
  std::size_t batch_size = 5000;
  std::size_t batch_bytes = std::size_t{32} << 20;  // shared by the batches in flight (see batch_share)
  std::size_t threads = 2;                          // classification threads
  std::int64_t max_rows = 0;                        // read only the first this many rows (key order); 0: all
  std::size_t examples = 20;  // primary keys kept per column of values that are not under the new key
  // Keep the keys of up to this many rows holding a value under an old key
  // (CensusOutcome::old_rows), for rotate's final sweep; 0: keep none.
  std::size_t collect_old_rows = 0;
};

struct CensusOutcome {
  std::vector<CensusCounts> counts;  // one per column
  std::vector<Failure> examples;     // up to settings.examples per column, in scan order
  std::vector<KeyValues> old_rows;   // rows with a value under an old key (see collect_old_rows)
  bool old_rows_capped = false;      // more such rows exist than old_rows holds
  std::int64_t rows_seen = 0;
  bool completed = false;  // read every row asked for (not stopped)
};

// Classifies one batch of rows, each column per its ValuePolicy: the pure
// middle stage, exposed for tests. `examples_per_column` caps the values not
// under the new key returned per column.
CensusOutcome census_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<Row>& rows,
                          std::size_t examples_per_column);

// Reads `shape`'s rows (all, or settings.max_rows) through `scanner` and
// counts them. Stops early, between batches, when `stop` asks. Database errors
// propagate: a scan cannot resume, so the caller decides whether to start over.
CensusOutcome census_table(const TableShape& shape, const crypto::Keyring& keyring, RowScanner& scanner,
                           const CensusSettings& settings, StopControl& stop,
                           const std::function<void(std::int64_t rows_seen, double elapsed_seconds)>& on_progress);

}  // namespace rekey
