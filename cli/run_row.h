// The runs table's row of a rotate invocation: the run it continues, or a
// new one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "crypto/keyring.h"
#include "db/state_store.h"
#include "db/table_lock.h"

namespace rekey {

// How an invocation takes its run: --restart, --join, what it was asked
// (recorded with a new run), and the run it rolls back (rekey rollback).
struct RunOpening {
  bool restart = false;
  db::LockShare share = db::LockShare::kAlone;
  db::RunScope scope;
  std::optional<std::int64_t> rollback_of;
};

// Finds the run to continue, or starts one. One new key per column: throws
// UsageError when an unfinished run over any of these columns has another new
// key, unless --restart is given or this is a rollback, which supersede every
// such run. --restart also starts anew where the last run has the same key; a
// rollback resumes that run. A worker joining (LockShare::kJoin) is refused a
// run in progress over other targets that share some of these columns.
std::int64_t open_run(db::StateStore& store, const std::string& targets, const crypto::Keyring& keyring,
                      const RunOpening& opening);

}  // namespace rekey
