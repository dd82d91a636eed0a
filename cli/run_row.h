// The runs table's row of a rotate invocation: the run it continues, or a
// new one.
#pragma once

#include <cstdint>
#include <string>

#include "crypto/keyring.h"
#include "db/state_store.h"
#include "db/table_lock.h"

namespace rekey {

// Finds the run to continue, or starts one. One new key per column: throws
// UsageError when an unfinished run over any of these columns has another new
// key and --restart is not given; --restart supersedes every unfinished run
// over them. A worker joining (LockShare::kJoin) is refused a run in progress
// over other targets that share some of these columns.
std::int64_t open_run(db::StateStore& store, const std::string& targets, const crypto::Keyring& keyring, bool restart,
                      db::LockShare share);

}  // namespace rekey
