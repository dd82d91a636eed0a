#include "cli/rollback.h"

#include <fmt/format.h>

#include <set>
#include <sstream>
#include <vector>

#include "cli/status_command.h"
#include "cli/targets.h"
#include "common/errors.h"
#include "common/log.h"

namespace rekey {
namespace {

std::string first_old_fingerprint(const db::RunRecord& run) {
  return run.old_key_fingerprints.substr(0, run.old_key_fingerprints.find(','));
}

// Refuses a key that is not run N's: the new key must be the one N rotated
// to, the first old key the one N rotated from.
void check_keys(const db::RunRecord& run, const crypto::Keyring& keyring) {
  const std::string& given_new = keyring.old_key(0).fingerprint();
  const std::string& given_old = keyring.new_key().fingerprint();
  if (given_new != run.new_key_fingerprint) {
    throw UsageError(fmt::format(
        "rollback: the new key given has fingerprint {}, but run {} rotated to {}: give the key run {} rotated TO "
        "as the new key (--new-key-*), as when it ran",
        given_new, run.id, run.new_key_fingerprint, run.id));
  }
  const std::string theirs = first_old_fingerprint(run);
  if (given_old != theirs) {
    throw UsageError(fmt::format(
        "rollback: the first old key given has fingerprint {}, but run {} rotated from {}: give the key run {} "
        "rotated FROM as the first old key (--old-key-*), as when it ran",
        given_old, run.id, theirs.empty() ? "(none recorded)" : theirs, run.id));
  }
}

// Refuses while N runs, and when a later run (not a rollback of N) covers
// some of N's columns: the data may be under that run's key now.
void check_runs(db::StateStore& store, const db::RunRecord& run) {
  if (run.status == db::RunStatus::kRunning && !store.locked_tables(target_tables(run.targets)).empty()) {
    throw UsageError(fmt::format(
        "rollback: run {} is still running; stop it first (SIGTERM or Ctrl-C: it stops after the batch in flight), "
        "then roll it back",
        run.id));
  }
  for (const auto& later : store.runs_after(run.id)) {
    if (later.rollback_of == run.id || later.superseded_by || !targets_overlap(later.targets, run.targets)) continue;
    throw UsageError(fmt::format(
        "rollback: run {} (new key {}, {}) came after run {} over some of its columns: the data may be under its key; "
        "roll back run {} first",
        later.id, later.new_key_fingerprint, db::to_string(later.status), run.id, later.id));
  }
}

}  // namespace

RolledBackRun check_rollback(const std::string& conninfo, const std::string& state_schema, std::int64_t run_id,
                             const crypto::Keyring& keyring) {
  db::StateStore store(conninfo, state_schema);
  if (!store.schema_exists()) throw UsageError("rollback: no state schema " + state_schema + ": nothing has run here");
  const auto run = store.run(run_id);
  if (!run) throw UsageError(fmt::format("rollback: there is no run {} (rekey status lists the runs)", run_id));
  check_keys(*run, keyring);
  check_runs(store, *run);
  log::warn(
      "rollback of run {}: every value of its columns under key {} goes back to key {}, including values the "
      "application wrote under {} since run {}: the whole column goes to one key. Deploy the application with key {} "
      "for writing (and {} still for reading) before you roll back.",
      run_id, run->new_key_fingerprint, keyring.new_key().fingerprint(), run->new_key_fingerprint, run_id,
      keyring.new_key().fingerprint(), run->new_key_fingerprint);
  RolledBackRun rolled{run_id, run->scope.value_or(db::RunScope{}), run->targets};
  // A run an older rekey made recorded only the columns it resolved.
  if (!run->scope) {
    for (const auto& line : target_lines(run->targets)) rolled.scope.columns.push_back(line);
  }
  return rolled;
}

void warn_rollback_targets(const RolledBackRun& run, const std::string& ours) {
  const std::int64_t run_id = run.id;
  const std::set<std::string> before = target_lines(run.targets);
  const std::set<std::string> now = target_lines(ours);
  for (const auto& line : before) {
    if (now.count(line) == 0) log::warn("rollback: column {} of run {} is not among the targets now", line, run_id);
  }
  for (const auto& line : now) {
    if (before.count(line) == 0) {
      log::warn("rollback: column {} was not among run {}'s targets; it holds tokens now and goes back too", line,
                run_id);
    }
  }
}

}  // namespace rekey
