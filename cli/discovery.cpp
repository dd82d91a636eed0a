#include "cli/discovery.h"

#include <algorithm>

#include "cli/relation_census.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"
#include "crypto/token_signs.h"

namespace rekey {
namespace {

// The format of the first token and the keys of a found column's sample.
void attribute(DiscoveredColumn& d, const std::vector<std::string>& sample, const crypto::Keyring* keyring) {
  std::vector<std::int64_t> per_key(keyring != nullptr ? keyring->old_key_count() + 1 : 0);
  for (const auto& value : sample) {
    const auto format = crypto::token_format(value);
    if (!format) continue;
    if (d.tokens++ == 0) d.format = *format;
    if (keyring != nullptr) {
      const crypto::ValueResult r = keyring->inspect(value);
      if (r.key_index >= 0) ++per_key[static_cast<std::size_t>(r.key_index)];
    }
  }
  d.sampled = static_cast<std::int64_t>(sample.size());
  for (std::size_t k = 0; k < per_key.size(); ++k) {
    if (per_key[k] > 0) d.keys.emplace_back(keyring->fingerprint(static_cast<int>(k)), per_key[k]);
  }
}

DiscoveredColumn found_column(const db::ScopeRelation& rel, const db::ScopeColumn& column, std::int64_t count) {
  DiscoveredColumn d;
  d.schema = rel.schema;
  d.table = rel.table;
  d.column = column.name;
  d.type = column.type;
  d.estimated_rows = static_cast<std::int64_t>(rel.estimated_rows);
  d.values_with_tokens = count;
  if (auto why = why_not_rotatable(rel, column)) {
    d.rotatable = false;
    d.note = *why;
  }
  return d;
}

}  // namespace

Discovery discover_columns(const std::string& conninfo, const DiscoveryOptions& options,
                           const crypto::Keyring* keyring) {
  db::DiscoveryQueries queries(conninfo);
  const std::vector<std::string> missing = queries.missing_schemas(options.schemas);
  if (!missing.empty()) {
    throw UsageError("schema " + quote_ident_if_needed(missing.front()) +
                     " does not exist (or is not visible to this user)");
  }
  const Scope scope = database_scope(queries, options.schemas, options.state_schema, Exclusions(options.exclude));
  Discovery out;
  out.unchecked = scope.unchecked;
  out.excluded = scope.excluded;
  const db::TokenFilter filter = token_filter();
  const db::TokenFilter strong{filter.anywhere, "", 0};
  const db::TokenFilter weak{{}, filter.first_chars, filter.min_whole_length};
  for (const auto& rel : scope.relations) {
    const TableShape shape = rel.shape(ValuePolicy::kValuesWithToken);
    log::debug("discovery: counting tokens in {} column(s) of {}", shape.columns.size(), shape.display_name());
    const auto counts = queries.count_token_values(shape, strong, weak);
    for (std::size_t c = 0; c < rel.columns.size(); ++c) {
      const TableShape one = shape.column_shape(c);
      std::int64_t found = counts[c].first;
      // A weak sign alone (the shape of a whole token) is confirmed value by value.
      if (counts[c].second > 0) {
        for (const auto& value : queries.token_values(one, weak, 0)) {
          if (!crypto::holds_token_prefix(value) && crypto::is_whole_token(value)) ++found;  // not counted yet
        }
      }
      if (found == 0) continue;
      DiscoveredColumn d = found_column(rel, rel.columns[c], found);
      if (options.sample > 0) attribute(d, queries.token_values(one, filter, options.sample), keyring);
      out.columns.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace rekey
