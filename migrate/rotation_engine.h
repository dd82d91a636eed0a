// Rotating one table, in named stages: the main pass (a TBB pipeline of a
// serial keyset reader, a parallel re-encryption stage and a serial writer,
// compare-and-swap plus checkpoint per transaction); the pending rows (those
// that lost a compare-and-swap) read again until they settle; then the final
// sweep, a census of the whole table that rotates whatever it still finds
// under an old key (values the application wrote behind the checkpoint).
// Memory is bounded by the batches in flight, in rows and in bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/keyring.h"
#include "migrate/retry.h"
#include "migrate/stop_control.h"
#include "migrate/table_port.h"
#include "migrate/throttle.h"

namespace rekey {

enum class WriteMode { kWrite, kDryRun };

struct EngineSettings {
  std::size_t batch_size = 2000;
  // The values of all batches in flight at once (threads + 2) hold about this
  // many bytes at most: each read gets its share (batch_share).
  std::size_t batch_bytes = std::size_t{32} << 20;
  std::size_t threads = 2;           // re-encryption threads
  std::int64_t max_failures = 0;     // stop once this many failures are seen; 0: no limit
  std::int64_t failures_before = 0;  // failures this run recorded before this table
  RetryPolicy retry;
  int pending_rounds = 20;       // times pending rows are read again before giving up
  Throttle* throttle = nullptr;  // pacing and batch size; null: fixed batch_size, no pacing
  // Called before each write; false means this runner lost its table lock to
  // another, and the run stops (kLockLost) without writing. Null: not checked.
  std::function<bool()> still_locked;
  // Opens a scan of the whole table (the target columns) for the final sweep.
  // Null: no sweep (a dry run, which writes nothing).
  std::function<std::unique_ptr<RowScanner>()> open_scan;
  int sweep_rounds = 3;  // sweeps that may still find old-key values before the run gives up (exit 75)
};

struct TableOutcome {
  std::vector<ColumnCounts> counts;  // this invocation's, one per column
  std::int64_t rows_seen = 0;
  std::int64_t batches = 0;
  std::int64_t retries = 0;
  std::int64_t pending_left = 0;        // rows still changing under us after every round
  std::int64_t pending_not_found = 0;   // pending rows gone when read again (deleted, or their key changed)
  std::int64_t swept = 0;               // rows the final sweep found under an old key and rewrote
  bool old_values_keep_coming = false;  // every sweep still found old-key values: another writer uses the old key
  bool completed = false;               // reached the end, settled pending rows, and the final sweep found nothing old
  double read_seconds = 0;              // time in the reader, writer and re-encryption stages
  double write_seconds = 0;
  double crypto_seconds = 0;                            // summed over threads
  std::map<std::string, std::int64_t> failure_reasons;  // this invocation's failures by reason
};

// Called from the writer stage after each committed batch with the outcome so
// far and the seconds since the table started.
using ProgressCallback = std::function<void(const TableOutcome& so_far, double elapsed_seconds)>;

// Which stages of a table's rotation one call runs.
enum class TableStages {
  kAll,       // the main pass over the range, then the pending rows and the final sweep
  kMainPass,  // the main pass over the range alone (one chunk of a table)
  kFinish,    // the pending rows and the final sweep alone (once every chunk is done)
};

// Rotates `shape`'s columns over `range` (the whole table, or what is left of
// it after a checkpoint, or a chunk), in `stages`; TableOutcome::completed
// when every stage run got to its end. Stops early, after committing batches
// in flight, when `stop` asks. Transient database errors are retried per
// settings.retry; other exceptions propagate (every committed batch stays
// consistent), kLeaseLost included.
TableOutcome rotate_table(const TableShape& shape, const crypto::Keyring& keyring, TableReader& reader,
                          TableWriter& writer, const KeyRange& range, TableStages stages,
                          const EngineSettings& settings, StopControl& stop, const ProgressCallback& on_progress);

}  // namespace rekey
