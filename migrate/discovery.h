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
  std::int64_t estimated_rows = 0;  // -1: unknown (the table was never analyzed)
  std::int64_t sampled = 0;
  std::int64_t tokens = 0;
  std::vector<std::pair<std::string, std::int64_t>> keys;  // fingerprint -> sampled values, when keys are given
  // False when `rekey rotate` cannot handle the column (no primary key, or part
  // of it); `note` then says why.
  bool rotatable = true;
  std::string note;
};

// Read-only. `keyring` may be null (then no key attribution). A column is
// reported when at least half of its sampled non-NULL values (and at least
// one) parse as Fernet tokens (crypto::token_format). Throws UsageError when a
// schema in options.schemas does not exist.
std::vector<DiscoveredColumn> discover_columns(const std::string& conninfo, const DiscoveryOptions& options,
                                               const crypto::Keyring* keyring);

}  // namespace rekey
