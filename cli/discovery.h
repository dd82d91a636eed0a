// Finding encrypted columns from the data itself: every column of every
// relation that can hold a token is counted, over every row, for values
// holding a token prefix; a column holding one is found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/scope.h"
#include "crypto/keyring.h"
#include "db/state_schema_name.h"

namespace rekey {

struct DiscoveryOptions {
  std::vector<std::string> schemas;                    // only these; empty: all but system schemas
  std::string state_schema = db::kDefaultStateSchema;  // its own tables are never searched
  std::vector<std::string> exclude;                    // --exclude SCHEMA.TABLE[.COLUMN]
  // Values holding a token read per found column, for its format and (with
  // a keyring) the keys it is under; 0: none (the counts alone).
  std::size_t sample = 200;
};

struct DiscoveredColumn {
  std::string schema;
  std::string table;
  std::string column;
  std::string type;
  crypto::ValueFormat format = crypto::ValueFormat::kPlain;  // of the sample's first token
  std::int64_t estimated_rows = 0;                           // -1: unknown (never analyzed)
  std::int64_t values_with_tokens = 0;                       // exact: values holding a token prefix, over every row
  std::int64_t sampled = 0;                                  // values read for the format and keys
  std::int64_t tokens = 0;                                   // of those, values holding a well-formed token
  std::vector<std::pair<std::string, std::int64_t>> keys;    // fingerprint -> sampled values, when keys are given
  // False when `rekey rotate` cannot rewrite the column; `note` then says why.
  bool rotatable = true;
  std::string note;
};

struct Discovery {
  std::vector<DiscoveredColumn> columns;  // every column holding a token prefix, by schema, table, position
  std::vector<Unchecked> unchecked;       // what could not be read, and why
  std::vector<std::string> excluded;      // what --exclude left out
};

// Read-only. `keyring` may be null (then no key attribution). Throws
// UsageError when a schema in options.schemas does not exist or an
// --exclude spec is malformed.
Discovery discover_columns(const std::string& conninfo, const DiscoveryOptions& options,
                           const crypto::Keyring* keyring);

}  // namespace rekey
