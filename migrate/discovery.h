// Finding encrypted columns from the data itself: every text-like and bytea
// column of every readable table is sampled for Fernet tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crypto/keyring.h"

namespace rekey {

struct DiscoveryOptions {
  std::vector<std::string> schemas;           // only these; empty: all but system schemas
  std::vector<std::string> excluded_schemas;  // e.g. rekey's state schema
  std::size_t sample = 200;                   // non-NULL values sampled per column
};

struct DiscoveredColumn {
  std::string schema;
  std::string table;
  std::string column;
  std::string type;
  crypto::ValueFormat format = crypto::ValueFormat::kPlain;
  std::int64_t estimated_rows = 0;
  std::int64_t sampled = 0;
  std::int64_t tokens = 0;
  std::vector<std::pair<std::string, std::int64_t>> keys;  // fingerprint -> sampled values, when keys are given
};

// Read-only. `keyring` may be null (then no key attribution).
std::vector<DiscoveredColumn> discover_columns(const std::string& conninfo, const DiscoveryOptions& options,
                                               const crypto::Keyring* keyring);

}  // namespace rekey
