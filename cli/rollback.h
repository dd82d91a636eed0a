// `rekey rollback --run N`: run N's rotated values taken back to the key
// they were under before, by the rotation engine itself (a new run, linked
// to N, over N's columns, with N's keys swapped: see KeyOrder::kRollback).
#pragma once

#include <cstdint>
#include <string>

#include "cli/target_resolver.h"
#include "crypto/keyring.h"
#include "db/state_store.h"
#include "db/table_lock.h"

namespace rekey {

// The run a rollback takes back, as recorded.
struct RolledBackRun {
  db::RunRecord run;
  // What it was asked to rotate, to resolve again (for a run an older rekey
  // made, which recorded none: its columns).
  db::RunScope scope;
};

// Run `run_id`, once it may be rolled back with `keyring` (in rollback order:
// its new key run N's first old key, its first old key run N's new key), and
// a line on what a rollback does to values written since. Throws UsageError
// (exit 2) when the state schema or run N does not exist, a key is not run
// N's (saying which), N is still running, or a later run over some of N's
// columns still stands (one neither rolled back nor a rerun of N's rotation:
// roll that one back first). Read-only.
RolledBackRun check_rollback(const std::string& conninfo, const std::string& state_schema, std::int64_t run_id,
                             const crypto::Keyring& keyring);

// Again, once the rollback holds its tables and the run-opening lock: no
// later run has come to stand since, and a worker joining (`share` kJoin)
// joins a rollback of N already begun, never N itself. Throws UsageError.
void recheck_rollback(db::StateStore& store, const RolledBackRun& rolled_back, db::LockShare share);

// Narrows `targets` (resolved from the rolled-back run's scope) to the
// columns run N covered, warning about N's columns gone since; for a run an
// older rekey made, its columns are taken as found by discovery (values
// holding a token, the rest left alone). Throws UsageError when none is left.
void keep_rolled_back_columns(RotationTargets& targets, const RolledBackRun& rolled_back);

}  // namespace rekey
