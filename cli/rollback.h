// `rekey rollback --run N`: run N's rotated values taken back to the key
// they were under before, by the rotation engine itself (a new run, linked
// to N, with N's targets and N's keys swapped: see KeyOrder::kRollback).
#pragma once

#include <cstdint>
#include <string>

#include "crypto/keyring.h"
#include "db/state_store.h"

namespace rekey {

// The run a rollback takes back: what it was asked to rotate (to resolve
// again) and the columns it resolved to (a targets_key).
struct RolledBackRun {
  std::int64_t id = 0;
  db::RunScope scope;
  std::string targets;
};

// Run `run_id`, once it may be rolled back with `keyring` (in rollback order: its new key
// run N's first old key, its first old key run N's new key). Logs what a
// rollback does to the values the application wrote under N's new key since.
// Throws UsageError (exit 2) when the state schema or run N does not exist,
// N is still running, a later run that is not a rollback of N covers some of
// N's columns (roll that one back first), or a key is not run N's (naming
// which, by fingerprint). Read-only.
RolledBackRun check_rollback(const std::string& conninfo, const std::string& state_schema, std::int64_t run_id,
                             const crypto::Keyring& keyring);

// Warns about columns `run` covered that the rollback's targets (`ours`, a
// targets_key) do not, and the reverse (a --discover run's columns found
// again may differ). Pure but for the log.
void warn_rollback_targets(const RolledBackRun& run, const std::string& ours);

}  // namespace rekey
