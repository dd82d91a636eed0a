// Re-encrypting the rows of one batch: the rotation engine's middle stage,
// and the write that rows read again stand for. Pure functions, safe to call
// from any number of threads at once.
#pragma once

#include <vector>

#include "crypto/keyring.h"
#include "migrate/table_port.h"

namespace rekey {

// Re-encrypts `rows`: the updates (each changed cell with the value read, for
// the compare-and-swap), the failures with their reason, the counts.
BatchWrite rotate_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<Row>& rows);

// Why rows are read again by their keys.
enum class Reread {
  kPending,  // they lost a compare-and-swap: settled when read, marked not found when gone
  kSweep,    // the final sweep found them under an old key
};

// The write of `rows`, read again by the keys `asked` (in order; a key without
// a row has none any more). The rows were counted when first read: only what
// this read rotates or fails is new. Written around rows the application
// holds locked (they stay pending).
BatchWrite reread_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<KeyValues>& asked,
                       const std::vector<Row>& rows, Reread why);

}  // namespace rekey
