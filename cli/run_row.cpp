#include "cli/run_row.h"

#include <fmt/format.h>

#include <sstream>
#include <vector>

#include "cli/db_options.h"
#include "cli/targets.h"
#include "common/errors.h"
#include "common/log.h"

namespace rekey {
namespace {

std::string join_fingerprints(const crypto::Keyring& keyring) {
  std::string out;
  for (std::size_t i = 0; i < keyring.old_key_count(); ++i)
    out += (i > 0 ? "," : "") + keyring.old_key(i).fingerprint();
  return out;
}

// A worker joins a run only with every old key the run's workers use: values
// it could not decrypt would be recorded as failures that stay with the run.
void refuse_missing_old_keys(const db::RunRecord& run, const crypto::Keyring& keyring) {
  const std::string mine = "," + join_fingerprints(keyring) + ",";
  std::istringstream theirs(run.old_key_fingerprints);
  for (std::string fp; std::getline(theirs, fp, ',');) {
    if (!fp.empty() && mine.find("," + fp + ",") == std::string::npos) {
      throw UsageError(fmt::format(
          "run {} decrypts with old key {}, which this worker was not given: join it with all of its old keys", run.id,
          fp));
    }
  }
}

}  // namespace

std::int64_t open_run(db::StateStore& store, const std::string& targets, const crypto::Keyring& keyring,
                      const RunOpening& opening) {
  const std::string& new_fp = keyring.new_key().fingerprint();
  const bool supersede_others = opening.restart || opening.rollback_of.has_value();
  std::vector<std::int64_t> overlapping;
  for (const auto& other : store.unfinished_runs()) {
    if (!targets_overlap(other.targets, targets)) continue;
    if (opening.share == db::LockShare::kJoin && other.targets != targets && other.status == db::RunStatus::kRunning) {
      throw UsageError(fmt::format(
          "run {} is running over other targets that share some of these columns: join it with its own targets "
          "(see rekey status), or wait for it to end",
          other.id));
    }
    overlapping.push_back(other.id);
    if (other.new_key_fingerprint != new_fp && !supersede_others) {
      throw UsageError(fmt::format(
          "run {} is {} with new key {}, not {}, over some of these columns: finish it with that key, or pass "
          "--restart to start over with this one (values already under the new key are never rewritten)",
          other.id, db::to_string(other.status), other.new_key_fingerprint, new_fp));
    }
  }
  const auto last = store.latest_run(targets);
  if (last && last->status != db::RunStatus::kFinished && !last->superseded_by && !opening.restart &&
      last->new_key_fingerprint == new_fp) {
    if (opening.share == db::LockShare::kJoin && last->status == db::RunStatus::kRunning) {
      refuse_missing_old_keys(*last, keyring);
      log::info("joining run {} (new key {})", last->id, new_fp);
      return last->id;
    }
    store.set_runner(last->id, runner_identity(), join_fingerprints(keyring));
    log::info("resuming run {} (new key {})", last->id, new_fp);
    return last->id;
  }
  const std::int64_t id = store.create_run({targets, new_fp, join_fingerprints(keyring), command_line(),
                                            runner_identity(), opening.scope, opening.rollback_of});
  for (std::int64_t other : overlapping) store.supersede(other, id);
  log::info("started run {} (new key {})", id, new_fp);
  return id;
}

}  // namespace rekey
