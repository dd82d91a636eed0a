#include "cli/rollback.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "cli/status_command.h"
#include "cli/targets.h"
#include "common/errors.h"
#include "common/log.h"

namespace rekey {
namespace {

// Refuses a key that is not run N's: the new key must be the one N rotated
// to, the first old key the one N first rotated from.
void check_keys(const db::RunRecord& run, const crypto::Keyring& keyring) {
  const std::string& given_new = keyring.old_key(0).fingerprint();
  const std::string& given_old = keyring.new_key().fingerprint();
  if (given_new != run.new_key_fingerprint) {
    throw UsageError(fmt::format(
        "rollback: the new key given has fingerprint {}, but run {} rotated to {}: give as the new key (--new-key-*) "
        "the key run {} rotated TO (its new key in rekey status)",
        given_new, run.id, run.new_key_fingerprint, run.id));
  }
  if (given_old != run.first_old_key) {
    throw UsageError(fmt::format(
        "rollback: the first old key given has fingerprint {}, but run {} rotated from {}: give as the first old key "
        "(--old-key-*) the key run {} rotated FROM (the first of its old keys when it began)",
        given_old, run.id, run.first_old_key.empty() ? "(none recorded)" : run.first_old_key, run.id));
  }
}

// A later run over N's columns that still stands, oldest first: not a
// rollback of N, not a rerun of N's own rotation (same new key, same first
// old key: rolled back along), and not undone by a finished rollback of its
// own. A finished rollback undoes its run, and stands itself unless it put
// the values back under N's new key (a rollback of a rollback puts them
// under that run's key again). nullopt when none stands.
std::optional<db::RunRecord> standing_later_run(db::StateStore& store, const db::RunRecord& n) {
  std::vector<db::RunRecord> later = store.runs_after(n.id);  // newest first
  std::reverse(later.begin(), later.end());
  std::map<std::int64_t, db::RunRecord> standing;
  for (auto& run : later) {
    if (!targets_overlap(run.targets, n.targets) || run.rollback_of == n.id) continue;
    if (run.new_key_fingerprint == n.new_key_fingerprint && run.first_old_key == n.first_old_key) continue;
    const bool finished_rollback = run.rollback_of && run.status == db::RunStatus::kFinished;
    if (finished_rollback) standing.erase(*run.rollback_of);
    if (!finished_rollback || run.new_key_fingerprint != n.new_key_fingerprint) standing.emplace(run.id, run);
  }
  if (standing.empty()) return std::nullopt;
  return standing.begin()->second;
}

void refuse_standing_later_run(db::StateStore& store, const db::RunRecord& n) {
  if (const auto later = standing_later_run(store, n)) {
    throw UsageError(fmt::format(
        "rollback: run {} (new key {}, {}) came after run {} over some of its columns, and still stands: the data "
        "may be under its key; roll back run {} first",
        later->id, later->new_key_fingerprint, db::to_string(later->status), n.id, later->id));
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
  if (run->status == db::RunStatus::kRunning && !store.locked_tables(target_tables(run->targets)).empty()) {
    throw UsageError(fmt::format(
        "rollback: run {} is still running, or another run holds its tables; stop it first (SIGTERM or Ctrl-C: it "
        "stops after the batch in flight), then roll it back",
        run_id));
  }
  refuse_standing_later_run(store, *run);
  const std::string& to = keyring.new_key().fingerprint();
  log::warn(
      "rollback of run {}: every value of its columns under key {} goes back to key {}, including values the "
      "application wrote under {} since: the whole column goes to one key. Deploy the application with key {} for "
      "writing (and {} still for reading) before you roll back.",
      run_id, run->new_key_fingerprint, to, run->new_key_fingerprint, to, run->new_key_fingerprint);
  RolledBackRun rolled{*run, run->scope.value_or(db::RunScope{})};
  if (!run->scope) {
    for (const auto& line : target_lines(run->targets)) rolled.scope.columns.push_back(line);
  }
  return rolled;
}

void recheck_rollback(db::StateStore& store, const RolledBackRun& rolled_back, db::LockShare share) {
  refuse_standing_later_run(store, rolled_back.run);
  if (share != db::LockShare::kJoin) return;
  for (const auto& run : store.unfinished_runs()) {
    if (run.rollback_of == rolled_back.run.id) return;
  }
  throw UsageError(fmt::format(
      "rollback --join: no rollback of run {} has begun; start it without --join, then let other workers join it",
      rolled_back.run.id));
}

void keep_rolled_back_columns(RotationTargets& targets, const RolledBackRun& rolled_back) {
  const std::set<std::string> theirs = target_lines(rolled_back.run.targets);
  std::set<std::string> kept;
  std::vector<TableShape> shapes;
  for (const auto& shape : targets.shapes) {
    TableShape narrowed = shape;
    narrowed.columns.clear();
    narrowed.kinds.clear();
    narrowed.policies.clear();
    for (std::size_t c = 0; c < shape.columns.size(); ++c) {
      const std::string line = target_line(shape.schema, shape.table, shape.columns[c]);
      if (theirs.count(line) == 0) continue;
      kept.insert(line);
      narrowed.columns.push_back(shape.columns[c]);
      narrowed.kinds.push_back(shape.kinds.at(c));
      narrowed.policies.push_back(rolled_back.run.scope ? shape.policy(c) : ValuePolicy::kValuesWithToken);
    }
    if (!narrowed.columns.empty()) shapes.push_back(std::move(narrowed));
  }
  for (const auto& line : theirs) {
    if (kept.count(line) == 0) log::warn("rollback: column {} of run {} is not there now", line, rolled_back.run.id);
  }
  if (shapes.empty()) {
    throw UsageError(fmt::format("rollback: none of run {}'s columns is there now", rolled_back.run.id));
  }
  targets.shapes = std::move(shapes);
}

}  // namespace rekey
