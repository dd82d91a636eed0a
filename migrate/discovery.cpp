#include "migrate/discovery.h"

#include <algorithm>

#include "db/discovery_queries.h"
#include "db/identifier.h"
#include "migrate/errors.h"
#include "migrate/log.h"

namespace rekey {
namespace {

std::string display(const db::CandidateColumn& c) {
  return db::quote_ident_if_needed(c.schema) + "." + db::quote_ident_if_needed(c.table) + "." +
         db::quote_ident_if_needed(c.column);
}

// Classifies one column's sample; nullopt when it does not hold tokens.
std::optional<DiscoveredColumn> classify(const db::CandidateColumn& c, const db::ColumnSample& sample,
                                         const crypto::Keyring* keyring) {
  std::int64_t plain = 0;
  std::int64_t wrapped = 0;
  std::vector<std::int64_t> per_key(keyring != nullptr ? keyring->old_key_count() + 1 : 0);
  for (const auto& value : sample.values) {
    const auto format = crypto::token_format(value);
    if (!format) continue;
    ++(*format == crypto::ValueFormat::kPlain ? plain : wrapped);
    if (keyring != nullptr) {
      const crypto::ValueResult r = keyring->inspect(value);
      if (r.key_index >= 0) ++per_key[static_cast<std::size_t>(r.key_index)];
    }
  }
  const auto sampled = static_cast<std::int64_t>(sample.values.size());
  const std::int64_t tokens = plain + wrapped;
  if (tokens > 0) log::debug("{}: {} of {} sampled value(s) are Fernet tokens", display(c), tokens, sampled);
  if (tokens == 0 || tokens * 2 < sampled) return std::nullopt;

  DiscoveredColumn d;
  d.schema = c.schema;
  d.table = c.table;
  d.column = c.column;
  d.type = c.type;
  d.format = wrapped > plain ? crypto::ValueFormat::kWrapped : crypto::ValueFormat::kPlain;
  d.estimated_rows = static_cast<std::int64_t>(c.estimated_rows);
  d.sampled = sampled;
  d.tokens = tokens;
  for (std::size_t k = 0; k < per_key.size(); ++k) {
    if (per_key[k] > 0) d.keys.emplace_back(keyring->fingerprint(static_cast<int>(k)), per_key[k]);
  }
  if (!c.table_has_primary_key) {
    d.rotatable = false;
    d.note = "table has no primary key";
  } else if (c.in_primary_key) {
    d.rotatable = false;
    d.note = "column is part of the primary key";
  } else if (c.generated) {
    d.rotatable = false;
    d.note = "generated column: PostgreSQL computes it from other columns; rotate those";
  }
  if (plain > 0 && wrapped > 0) {
    log::warn("{}: sampled tokens are both plain ({}) and wrapped ({}); each keeps its format when rotated", display(c),
              plain, wrapped);
  }
  return d;
}

}  // namespace

std::vector<DiscoveredColumn> discover_columns(const std::string& conninfo, const DiscoveryOptions& options,
                                               const crypto::Keyring* keyring) {
  db::DiscoveryQueries queries(conninfo);
  const std::vector<std::string> missing = queries.missing_schemas(options.schemas);
  if (!missing.empty()) {
    throw UsageError("schema " + db::quote_ident_if_needed(missing.front()) +
                     " does not exist (or is not visible to this user)");
  }
  const std::vector<db::CandidateColumn> candidates =
      queries.list_candidate_columns(options.schemas, options.excluded_schemas);
  log::debug("discovery: sampling {} text and bytea column(s)", candidates.size());

  db::SampleSettings settings;
  settings.limit = std::max<std::size_t>(1, options.sample);
  std::vector<DiscoveredColumn> found;
  for (const auto& c : candidates) {
    const db::ColumnSample sample = queries.sample_column(c, settings);
    if (sample.cut_short) {
      log::warn("{}: the scan for non-NULL values was cut short after {} ms; {} value(s) sampled", display(c),
                settings.scan_timeout.count(), sample.values.size());
    }
    if (auto d = classify(c, sample, keyring)) found.push_back(std::move(*d));
  }
  return found;
}

}  // namespace rekey
